// The straightforward connection table: a JS Map keyed by a composite key built per lookup from the
// packet's numbers, holding one object per connection. Two flavours: a string key and a BigInt key.
// Both take the same inputs as the WASM lookupBatch (protocol, addresses as u32, ports) so the ratio
// compares table against table, including the cost of forming the key.

export interface BaselineConn {
  proto: number; caddr: number; cport: number; vaddr: number; vport: number;
  dest: number; state: number; flags: number; expires: number; inPkts: number;
}

export function stringKey(proto: number, caddr: number, cport: number, vaddr: number, vport: number): string {
  return `${proto}|${caddr}:${cport}|${vaddr}:${vport}`;
}

// The fields that vary between connections (client address and port) go in the low 64 bits: V8 hashes a
// BigInt Map key by its lowest 64-bit digit only, so a layout with the VIP there collides on every key.
export function bigintKey(proto: number, caddr: number, cport: number, vaddr: number, vport: number): bigint {
  return (BigInt(proto) << 112n) | (BigInt(vaddr) << 80n) | (BigInt(vport) << 64n) | (BigInt(caddr) << 16n) | BigInt(cport);
}

export class StringConnTable {
  readonly map = new Map<string, BaselineConn>();
  add(c: BaselineConn): void { this.map.set(stringKey(c.proto, c.caddr, c.cport, c.vaddr, c.vport), c); }
  lookup(proto: number, caddr: number, cport: number, vaddr: number, vport: number): BaselineConn | undefined {
    return this.map.get(stringKey(proto, caddr, cport, vaddr, vport));
  }
  get size(): number { return this.map.size; }
}

export class BigIntConnTable {
  readonly map = new Map<bigint, BaselineConn>();
  add(c: BaselineConn): void { this.map.set(bigintKey(c.proto, c.caddr, c.cport, c.vaddr, c.vport), c); }
  lookup(proto: number, caddr: number, cport: number, vaddr: number, vport: number): BaselineConn | undefined {
    return this.map.get(bigintKey(proto, caddr, cport, vaddr, vport));
  }
  get size(): number { return this.map.size; }
}

export function newConn(proto: number, caddr: number, cport: number, vaddr: number, vport: number, dest: number): BaselineConn {
  return { proto, caddr, cport, vaddr, vport, dest, state: 3, flags: 0, expires: 60_000, inPkts: 1 };
}

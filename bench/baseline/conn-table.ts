// The straightforward connection table: a JS Map keyed by a composite key built per lookup from the
// packet's numbers, holding one object per connection. Two flavours: a string key and a BigInt key.
// Both take the same inputs as the WASM lookupBatch (protocol, addresses as u32, ports) so the ratio
// compares table against table, including the cost of forming the key.

export interface BaselineConn {
  proto: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  dest: number;
  state: number;
  flags: number;
  expires: number;
  inPkts: number;
}

export function stringKey(proto: number, caddr: number, cport: number, vaddr: number, vport: number): string {
  return `${proto}|${caddr}:${cport}|${vaddr}:${vport}`;
}

// The fields that vary between connections (client address and port) go in the low 64 bits: V8 hashes a
// BigInt Map key by its lowest 64-bit digit only, so a layout with the VIP there collides on every key.
export function bigintKey(proto: number, caddr: number, cport: number, vaddr: number, vport: number): bigint {
  return (
    (BigInt(proto) << 112n) | (BigInt(vaddr) << 80n) | (BigInt(vport) << 64n) | (BigInt(caddr) << 16n) | BigInt(cport)
  );
}

export class StringConnTable {
  readonly map = new Map<string, BaselineConn>();
  add(c: BaselineConn): void {
    this.map.set(stringKey(c.proto, c.caddr, c.cport, c.vaddr, c.vport), c);
  }
  lookup(proto: number, caddr: number, cport: number, vaddr: number, vport: number): BaselineConn | undefined {
    return this.map.get(stringKey(proto, caddr, cport, vaddr, vport));
  }
  get size(): number {
    return this.map.size;
  }
}

export class BigIntConnTable {
  readonly map = new Map<bigint, BaselineConn>();
  add(c: BaselineConn): void {
    this.map.set(bigintKey(c.proto, c.caddr, c.cport, c.vaddr, c.vport), c);
  }
  lookup(proto: number, caddr: number, cport: number, vaddr: number, vport: number): BaselineConn | undefined {
    return this.map.get(bigintKey(proto, caddr, cport, vaddr, vport));
  }
  get size(): number {
    return this.map.size;
  }
}

export function newConn(
  proto: number,
  caddr: number,
  cport: number,
  vaddr: number,
  vport: number,
  dest: number,
): BaselineConn {
  return { proto, caddr, cport, vaddr, vport, dest, state: 3, flags: 0, expires: 60_000, inPkts: 1 };
}

// The strongest table a TypeScript engineer would write for this: open addressing with linear probing
// on one Int32Array, an integer hash of the key's numbers (no key object or string built per lookup), the
// whole key stored in the slot so a hit costs one cache line: 4 words per slot, [caddr, vaddr,
// cport << 16 | vport, proto << 24 | (connection index + 1)] (0 in the last word: empty). Capacity a power
// of two at least twice the connections, as a load factor of 0.5 keeps the probes short.
export class TypedConnTable {
  readonly slots: Int32Array;
  readonly conns: BaselineConn[] = [];
  private readonly mask: number;
  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    if (capacity >= 1 << 23) throw new Error(`TypedConnTable: ${capacity} connections exceed the 23-bit index`);
    this.slots = new Int32Array(size * 4);
    this.mask = size - 1;
  }
  static hash(proto: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    let h = Math.imul(caddr ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 15) ^ ((cport << 16) | vport), 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 13) ^ vaddr ^ (proto << 24), 0x27d4eb2f);
    return h ^ (h >>> 16);
  }
  add(c: BaselineConn): void {
    if (this.conns.length >= (this.mask + 1) >> 1) throw new Error("TypedConnTable full");
    const s = this.slots;
    let i = TypedConnTable.hash(c.proto, c.caddr, c.cport, c.vaddr, c.vport) & this.mask;
    while (s[i * 4 + 3] !== 0) i = (i + 1) & this.mask;
    this.conns.push(c);
    s[i * 4] = c.caddr;
    s[i * 4 + 1] = c.vaddr;
    s[i * 4 + 2] = (c.cport << 16) | c.vport;
    s[i * 4 + 3] = (c.proto << 24) | this.conns.length;
  }
  // the connection's index, or -1
  find(proto: number, caddr: number, cport: number, vaddr: number, vport: number): number {
    const s = this.slots,
      mask = this.mask;
    const ports = (cport << 16) | vport,
      ca = caddr | 0,
      va = vaddr | 0;
    let i = TypedConnTable.hash(proto, caddr, cport, vaddr, vport) & mask;
    for (;;) {
      const o = i << 2,
        tag = s[o + 3];
      if (tag === 0) return -1;
      if (s[o] === ca && s[o + 1] === va && s[o + 2] === ports && tag >>> 24 === proto) return (tag & 0xffffff) - 1;
      i = (i + 1) & mask;
    }
  }
  lookup(proto: number, caddr: number, cport: number, vaddr: number, vport: number): BaselineConn | undefined {
    const k = this.find(proto, caddr, cport, vaddr, vport);
    return k >= 0 ? this.conns[k] : undefined;
  }
  get size(): number {
    return this.conns.length;
  }
}

// The exports of a compiled WASM module with their types, read from the binary itself (its type, import,
// function, global and export sections): Node 20 lists export names and kinds, not signatures.
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128" | "ref";
export type ExportSig =
  | { kind: "function"; params: ValType[]; results: ValType[] }
  | { kind: "global"; type: ValType; mutable: boolean }
  | { kind: "memory" | "table" };

const VAL: Record<number, ValType> = {
  127: "i32",
  126: "i64",
  125: "f32",
  124: "f64",
  123: "v128",
  112: "ref",
  111: "ref",
};

// A cursor over the module's bytes, reading the encodings its sections use.
class WasmReader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  u8(): number {
    if (this.pos >= this.bytes.length) throw new Error(`wasm: truncated at byte ${this.pos}`);
    return this.bytes[this.pos++];
  }
  leb(): number {
    let result = 0,
      shift = 0,
      b: number;
    do {
      b = this.u8();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return result;
  }
  sleb(): void {
    while (this.u8() & 0x80);
  }
  name(): string {
    const n = this.leb(),
      s = new TextDecoder().decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
  valType(): ValType {
    const b = this.u8(),
      t = VAL[b];
    if (!t) throw new Error(`wasm: value type 0x${b.toString(16)}`);
    return t;
  }
  limits(): void {
    const flag = this.u8();
    this.leb();
    if (flag & 1) this.leb();
  }
  constExpr(): void {
    for (;;) {
      const op = this.u8();
      if (op === 0x0b) return;
      if (op === 0x41 || op === 0x42) this.sleb();
      else if (op === 0x43) this.pos += 4;
      else if (op === 0x44) this.pos += 8;
      else if (op === 0x23 || op === 0xd2) this.leb();
      else if (op === 0xd0) this.u8();
      else throw new Error(`wasm: constant expression opcode 0x${op.toString(16)}`);
    }
  }
}

export function exportSignatures(bytes: Uint8Array): Map<string, ExportSig> {
  const r = new WasmReader(bytes);
  const u8 = () => r.u8(),
    leb = () => r.leb(),
    name = () => r.name(),
    valType = () => r.valType(),
    limits = () => r.limits();

  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new Error("not a WASM module (no \\0asm magic)");
  }
  r.pos = 8;
  const types: { params: ValType[]; results: ValType[] }[] = [];
  const funcTypes: number[] = []; // function index -> type index (imports first)
  const globals: { type: ValType; mutable: boolean }[] = [];
  const exports: { name: string; kind: number; index: number }[] = [];
  while (r.pos < bytes.length) {
    const id = u8(),
      size = leb(),
      end = r.pos + size;
    if (id === 1) {
      for (let n = leb(); n > 0; n--) {
        if (u8() !== 0x60) throw new Error("wasm: a type that is not a function type");
        const params = Array.from({ length: leb() }, valType);
        const results = Array.from({ length: leb() }, valType);
        types.push({ params, results });
      }
    } else if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        name();
        name();
        const kind = u8();
        if (kind === 0) funcTypes.push(leb());
        else if (kind === 1) {
          u8();
          limits();
        } else if (kind === 2) limits();
        else if (kind === 3) {
          const type = valType();
          globals.push({ type, mutable: u8() === 1 });
        } else throw new Error(`wasm: import kind ${kind}`);
      }
    } else if (id === 3) {
      for (let n = leb(); n > 0; n--) funcTypes.push(leb());
    } else if (id === 6) {
      for (let n = leb(); n > 0; n--) {
        const type = valType();
        globals.push({ type, mutable: u8() === 1 });
        r.constExpr();
      }
    } else if (id === 7) {
      for (let n = leb(); n > 0; n--) exports.push({ name: name(), kind: u8(), index: leb() });
    }
    r.pos = end;
  }
  const out = new Map<string, ExportSig>();
  for (const e of exports) {
    if (e.kind === 0) out.set(e.name, { kind: "function", ...types[funcTypes[e.index]] });
    else if (e.kind === 3) out.set(e.name, { kind: "global", ...globals[e.index] });
    else out.set(e.name, { kind: e.kind === 2 ? "memory" : "table" });
  }
  return out;
}

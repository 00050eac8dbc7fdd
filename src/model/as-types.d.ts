// The AssemblyScript value types, as tsc sees them in the files both compilers read (assembly/layout.ts,
// assembly/sched/list.ts): every one is a JavaScript number at the boundary, except 64-bit integers.
type i32 = number;
type u32 = number;
type bool = boolean;

// The random source for twos: a seeded generator, so runs are reproducible (the kernel uses
// get_random_u32_below(); the host picks the seed).
let state: u64 = 0x9e3779b97f4a7c15;

export function seedRandom(seed: u64): void {
  state = seed;
}

// splitmix64, the upper 32 bits
export function randomU32(): u32 {
  state += 0x9e3779b97f4a7c15;
  let z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  z = z ^ (z >> 31);
  return <u32>(z >> 32);
}

// A uniform value in [0, ceil): the kernel's multiply-shift with rejection (get_random_u32_below).
export function randomBelow(ceil: u32): u32 {
  if (ceil <= 1) return 0;
  let mult = <u64>ceil * <u64>randomU32();
  if (<u32>mult < ceil) {
    const bound = -ceil % ceil;
    while (<u32>mult < bound) mult = <u64>ceil * <u64>randomU32();
  }
  return <u32>(mult >> 32);
}

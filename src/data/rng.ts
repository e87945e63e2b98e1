/**
 * Seeded, serialisable pseudo-random generator (xoshiro128**, seeded by splitmix32).
 * Every random decision of the training recipe (shuffling, crops, flips, mixup/cutmix,
 * erasing) draws from one of these, so a run is reproducible and a resumed run continues
 * the exact same random stream.
 */

export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s: Uint32Array;

  constructor(seed: number | RngState = 0) {
    this.s = new Uint32Array(4);
    if (Array.isArray(seed)) {
      this.setState(seed);
    } else {
      const sm = splitmix32(seed);
      for (let i = 0; i < 4; i++) this.s[i] = sm();
      if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
    }
  }

  /** Next uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller; no cached spare, so the state is just the 4 words). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, 1) by Marsaglia-Tsang. */
  gamma(shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(this.uniform() || 1e-12, 1 / shape);
    const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.uniform();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(a, b). */
  beta(a: number, b: number): number {
    const x = this.gamma(a), y = this.gamma(b);
    return x / (x + y);
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T extends {length: number, [i: number]: number}>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** A permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  getState(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  setState(state: RngState): void {
    if (!Array.isArray(state) || state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
      throw new Error(`Rng.setState: expected 4 uint32 values, got ${JSON.stringify(state)}`);
    }
    for (let i = 0; i < 4; i++) this.s[i] = state[i];
  }

  /** A new independent generator derived from this one (consumes two draws). */
  fork(): Rng {
    return new Rng((this.nextUint32() ^ Math.imul(this.nextUint32(), 0x27d4eb2d)) >>> 0);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * mulberry32: a small seeded generator of floats in [0, 1) with one 32-bit word of state, for
 * reproducible test data, sample images and `Math.random`-shaped random sources. Training draws
 * from Rng, whose state a checkpoint saves.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A source of uniform numbers in [0, 1), shaped like Math.random. */
export type RandomSource = () => number;

/**
 * Runs `fn` with `random` (a RandomSource, or an Rng's uniform draws) as the seed source of
 * tfjs' unseeded random ops: tfjs-core's random ops, and so tfjs-layers' initialisers, dropout
 * and drop-path masks, take their seed from Math.random when none is given, so Math.random is
 * `random` while `fn` runs (an async `fn`: until its promise settles) and is restored
 * afterwards, even on error. The one place the package hands tfjs a generator; callers pass
 * their generator in explicitly (a seed option, an Rng), none reads or keeps Math.random.
 */
export function withMathRandom<T>(random: RandomSource | Rng, fn: () => T): T {
  const draw: RandomSource = typeof random === 'function' ? random : () => random.uniform();
  const orig = Math.random;
  Math.random = draw;
  let out: T;
  try {
    out = fn();
  } catch (e) {
    Math.random = orig;
    throw e;
  }
  if (out instanceof Promise) {
    return out.finally(() => {
      Math.random = orig;
    }) as T;
  }
  Math.random = orig;
  return out;
}

/**
 * The DeiT-style augmentation recipe on uint8 NHWC batches, all randomness drawn from a
 * seeded Rng: random crop with zero padding, horizontal flip, per-channel normalisation,
 * random erasing (optional), then mixup or cutmix on the batch and label smoothing of
 * the (soft) targets. Pure JS on typed arrays: no tensors are created here.
 */
import {Rng} from './rng';

export interface AugmentConfig {
  /** Per-channel mean/std of pixels in [0, 1]. */
  mean: number[];
  std: number[];
  /** Zero padding for random crops; 0 disables cropping. */
  cropPadding: number;
  hflip: boolean;
  /** Beta(α, α) mixup; 0 disables. */
  mixupAlpha: number;
  /** Beta(α, α) cutmix; 0 disables. */
  cutmixAlpha: number;
  /** Probability of applying mixup or cutmix to a batch. */
  mixProb: number;
  /** When both are enabled: probability of cutmix rather than mixup. */
  switchProb: number;
  labelSmoothing: number;
  /** Random erasing probability per image; 0 disables. */
  randomErasing: number;
}

export const NO_AUGMENT: AugmentConfig = {
  mean: [0, 0, 0], std: [1, 1, 1], cropPadding: 0, hflip: false, mixupAlpha: 0, cutmixAlpha: 0, mixProb: 0,
  switchProb: 0.5, labelSmoothing: 0, randomErasing: 0,
};

export interface Geometry {
  height: number;
  width: number;
  channels: number;
}

/** Random crop (from the zero-padded image) and flip of one HWC image, into `out` (uint8). */
export function cropFlip(src: Uint8Array, g: Geometry, pad: number, flip: boolean, rng: Rng, out: Uint8Array): void {
  const {height: H, width: W, channels: C} = g;
  const dy = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
  const dx = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
  const mirror = flip && rng.uniform() < 0.5;
  for (let y = 0; y < H; y++) {
    const sy = y + dy;
    for (let x = 0; x < W; x++) {
      const sx0 = x + dx;
      const sx = mirror ? W - 1 - sx0 : sx0;
      const o = (y * W + x) * C;
      if (sy < 0 || sy >= H || sx < 0 || sx >= W) {
        for (let c = 0; c < C; c++) out[o + c] = 0;
      } else {
        const s = (sy * W + sx) * C;
        for (let c = 0; c < C; c++) out[o + c] = src[s + c];
      }
    }
  }
}

/** uint8 HWC -> normalised float32, for `n` images. */
export function normalise(src: Uint8Array, n: number, g: Geometry, mean: number[], std: number[], out: Float32Array): void {
  const C = g.channels, total = n * g.height * g.width;
  const scale = mean.map((_, c) => 1 / (255 * std[c]));
  const shift = mean.map((m, c) => m / std[c]);
  for (let i = 0; i < total; i++) {
    for (let c = 0; c < C; c++) out[i * C + c] = src[i * C + c] * scale[c] - shift[c];
  }
}

/**
 * Random erasing (Zhong et al.) of one normalised HWC image: with probability p, a
 * rectangle of area 2–33% and aspect ratio 0.3–3.3 is filled with N(0, 1) noise.
 */
export function randomErase(img: Float32Array, off: number, g: Geometry, p: number, rng: Rng): void {
  if (p <= 0 || rng.uniform() >= p) return;
  const {height: H, width: W, channels: C} = g;
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = H * W * (0.02 + rng.uniform() * (1 / 3 - 0.02));
    const logR = Math.log(0.3) + rng.uniform() * (Math.log(1 / 0.3) - Math.log(0.3));
    const ar = Math.exp(logR);
    const h = Math.round(Math.sqrt(area * ar)), w = Math.round(Math.sqrt(area / ar));
    if (h < 1 || w < 1 || h >= H || w >= W) continue;
    const y0 = rng.int(H - h + 1), x0 = rng.int(W - w + 1);
    for (let y = y0; y < y0 + h; y++) {
      for (let x = x0; x < x0 + w; x++) {
        for (let c = 0; c < C; c++) img[off + (y * W + x) * C + c] = rng.normal();
      }
    }
    return;
  }
}

/** One-hot targets with label smoothing: off = ε/K, on = 1 - ε + ε/K. */
export function smoothOneHot(labels: ArrayLike<number>, K: number, eps: number, out: Float32Array): void {
  const off = eps / K, on = 1 - eps + off;
  out.fill(off);
  for (let i = 0; i < labels.length; i++) out[i * K + labels[i]] = on;
}

export interface MixInfo {
  kind: 'none' | 'mixup' | 'cutmix';
  lambda: number;
}

/**
 * Batch mixup/cutmix as in timm: each image i is mixed with image n-1-i of the same
 * batch, with one λ ~ Beta(α, α) per batch (cutmix: λ corrected to the box area).
 * `x` is normalised NHWC, `y` soft targets [n, K]; both are modified in place.
 */
export function mixBatch(x: Float32Array, y: Float32Array, n: number, K: number, g: Geometry, cfg: AugmentConfig, rng: Rng): MixInfo {
  const useMix = cfg.mixupAlpha > 0, useCut = cfg.cutmixAlpha > 0;
  if ((!useMix && !useCut) || n < 2 || rng.uniform() >= cfg.mixProb) return {kind: 'none', lambda: 1};
  const cut = useCut && (!useMix || rng.uniform() < cfg.switchProb);
  let lam = rng.beta(cut ? cfg.cutmixAlpha : cfg.mixupAlpha, cut ? cfg.cutmixAlpha : cfg.mixupAlpha);
  const {height: H, width: W, channels: C} = g;
  const per = H * W * C;
  const x0 = x.slice();  // source of the partners, before mixing
  if (cut) {
    const r = Math.sqrt(1 - lam);
    const ch = Math.floor(H * r), cw = Math.floor(W * r);
    const cy = rng.int(H), cx = rng.int(W);
    const ya = Math.max(cy - (ch >> 1), 0), yb = Math.min(cy + (ch >> 1), H);
    const xa = Math.max(cx - (cw >> 1), 0), xb = Math.min(cx + (cw >> 1), W);
    for (let i = 0; i < n; i++) {
      const j = n - 1 - i;
      for (let yy = ya; yy < yb; yy++) {
        const row = yy * W;
        for (let xx = xa; xx < xb; xx++) {
          for (let c = 0; c < C; c++) x[i * per + (row + xx) * C + c] = x0[j * per + (row + xx) * C + c];
        }
      }
    }
    lam = 1 - ((yb - ya) * (xb - xa)) / (H * W);
  } else {
    for (let i = 0; i < n; i++) {
      const j = n - 1 - i;
      for (let k = 0; k < per; k++) x[i * per + k] = lam * x0[i * per + k] + (1 - lam) * x0[j * per + k];
    }
  }
  const y0 = y.slice();
  for (let i = 0; i < n; i++) {
    const j = n - 1 - i;
    for (let k = 0; k < K; k++) y[i * K + k] = lam * y0[i * K + k] + (1 - lam) * y0[j * K + k];
  }
  return {kind: cut ? 'cutmix' : 'mixup', lambda: lam};
}

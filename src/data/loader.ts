/**
 * Batching with asynchronous prefetch. For each epoch the order and every augmentation
 * decision come from an Rng derived from (seed, epoch), so an epoch is reproducible on
 * its own — which is what makes "resume at an epoch boundary" continue identically.
 * Up to `prefetch` batches are prepared ahead of the consumer (memory bounded by
 * prefetch x batch size); preparation happens whenever the training loop awaits.
 */
import {AugmentConfig, cropFlip, mixBatch, MixInfo, normalise, randomErase, smoothOneHot} from './augment';
import {DataError, ImageDataset} from './dataset';
import {Rng} from './rng';

export interface Batch {
  /** Normalised NHWC images, length size*H*W*C. */
  x: Float32Array;
  /** Targets [size, K]: soft (mixup/cutmix + smoothing) for training, one-hot for evaluation. */
  y: Float32Array;
  /** Hard labels of the (unmixed) images. */
  labels: Int32Array;
  size: number;
  mix: MixInfo;
  index: number;
}

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle and augment (training); otherwise ordered, normalise only. */
  train: boolean;
  augment: AugmentConfig;
  seed: number;
  /** Drop the last incomplete batch (training default true). */
  dropLast?: boolean;
  /** Batches prepared ahead (default 2). */
  prefetch?: number;
}

/** Derives the per-epoch seed from the run seed and the epoch number. */
export function epochSeed(seed: number, epoch: number): number {
  let h = (seed ^ 0x5bd1e995) >>> 0;
  h = Math.imul(h ^ (epoch + 0x9e3779b9), 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export class BatchLoader {
  readonly batchSize: number;
  readonly dropLast: boolean;
  readonly prefetch: number;

  constructor(readonly ds: ImageDataset, readonly opts: LoaderOptions) {
    const bs = opts.batchSize;
    if (!Number.isInteger(bs) || bs < 1) throw new DataError(`batch size must be an integer >= 1, got ${bs}`);
    this.dropLast = opts.dropLast ?? opts.train;
    if (bs > ds.size) {
      throw new DataError(`batch size ${bs} is larger than dataset '${ds.name}' (${ds.size} examples); use --batch-size ${ds.size} or less`);
    }
    this.batchSize = bs;
    this.prefetch = Math.max(1, opts.prefetch ?? 2);
  }

  /** Number of batches per epoch. */
  get length(): number {
    return this.dropLast ? Math.floor(this.ds.size / this.batchSize) : Math.ceil(this.ds.size / this.batchSize);
  }

  /** Prepares batch `b` of an epoch whose order is `order`, with randomness from `rng`. */
  private async prepare(order: Int32Array, b: number, rng: Rng): Promise<Batch> {
    const {ds, opts} = this;
    const g = {height: ds.height, width: ds.width, channels: ds.channels};
    const per = g.height * g.width * g.channels, K = ds.numClasses;
    const start = b * this.batchSize;
    const n = Math.min(this.batchSize, ds.size - start);
    const idx = order.subarray(start, start + n);
    const raw = new Uint8Array(n * per);
    await ds.readImages(idx, raw);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) labels[i] = ds.labels[idx[i]];
    const aug = opts.augment;
    let pix = raw;
    if (opts.train && (aug.cropPadding > 0 || aug.hflip)) {
      pix = new Uint8Array(n * per);
      for (let i = 0; i < n; i++) {
        cropFlip(raw.subarray(i * per, (i + 1) * per), g, aug.cropPadding, aug.hflip, rng, pix.subarray(i * per, (i + 1) * per));
      }
    }
    const x = new Float32Array(n * per);
    normalise(pix, n, g, aug.mean, aug.std, x);
    const y = new Float32Array(n * K);
    let mix: MixInfo = {kind: 'none', lambda: 1};
    if (opts.train) {
      for (let i = 0; i < n; i++) randomErase(x, i * per, g, aug.randomErasing, rng);
      smoothOneHot(labels, K, aug.labelSmoothing, y);
      mix = mixBatch(x, y, n, K, g, aug, rng);
    } else {
      smoothOneHot(labels, K, 0, y);
    }
    return {x, y, labels, size: n, mix, index: b};
  }

  /**
   * The batches of epoch `epoch` (0-based). Batches are prepared strictly in order (the
   * Rng is consumed in a fixed sequence), up to `prefetch` ahead of the consumer.
   */
  async *epoch(epoch: number): AsyncGenerator<Batch> {
    const rng = new Rng(epochSeed(this.opts.seed, epoch));
    const order = this.opts.train ? rng.permutation(this.ds.size) : Int32Array.from({length: this.ds.size}, (_, i) => i);
    const nb = this.length;
    const queue: Array<Promise<Batch>> = [];
    let next = 0;
    let chain: Promise<unknown> = Promise.resolve();
    const schedule = () => {
      while (queue.length < this.prefetch && next < nb) {
        const b = next++;
        // chain keeps preparation sequential so the Rng stream is deterministic
        const p = chain.then(() => new Promise<void>((r) => setImmediate(r))).then(() => this.prepare(order, b, rng));
        chain = p.catch(() => undefined);
        queue.push(p);
      }
    };
    schedule();
    while (queue.length > 0) {
      const batch = await queue.shift()!;
      schedule();
      yield batch;
    }
  }
}

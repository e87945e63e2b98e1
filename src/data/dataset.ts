/**
 * The in-memory image dataset used by the training recipe: uint8 pixels in NHWC order,
 * integer labels, class names. Loaders (CIFAR, IDX, image folders, the embedded subset)
 * all produce this; lazy sources implement `readImages` instead of holding `images`.
 */

/** Raised for missing, truncated or corrupt data and for bad dataset options. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

export interface ImageDataset {
  /** A human-readable name, e.g. 'cifar10/train'. */
  name: string;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  classNames: string[];
  /** Number of examples. */
  size: number;
  /** Label of each example, in [0, numClasses). */
  labels: Int32Array;
  /** NHWC uint8 pixels of every example, when the dataset is held in memory. */
  images?: Uint8Array;
  /**
   * Writes the NHWC pixels of `indices` into `out` (length indices.length * H * W * C).
   * Present on every dataset (in-memory ones copy from `images`).
   */
  readImages(indices: ArrayLike<number>, out: Uint8Array): Promise<void>;
}

export interface InMemoryInit {
  name: string;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  images: Uint8Array;
  labels: Int32Array;
}

/** Wraps NHWC uint8 pixels and labels as an ImageDataset, checking sizes and labels. */
export function inMemoryDataset(init: InMemoryInit): ImageDataset {
  const {name, height, width, channels, classNames, images, labels} = init;
  const per = height * width * channels;
  if (images.length !== labels.length * per) {
    throw new DataError(
        `${name}: ${labels.length} labels need ${labels.length * per} pixel bytes ` +
        `(${height}x${width}x${channels} each), got ${images.length}`);
  }
  const numClasses = classNames.length;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0 || labels[i] >= numClasses || !Number.isInteger(labels[i])) {
      throw new DataError(`${name}: label ${labels[i]} of example ${i} is outside [0, ${numClasses})`);
    }
  }
  return {
    name, height, width, channels, numClasses, classNames, size: labels.length, labels, images,
    readImages: async (indices, out) => copyImages(images, per, indices, out),
  };
}

export function copyImages(images: Uint8Array, per: number, indices: ArrayLike<number>, out: Uint8Array): void {
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    out.set(images.subarray(i * per, (i + 1) * per), k * per);
  }
}

/** A dataset restricted to the first `n` examples (or a given index list). */
export function takeSubset(ds: ImageDataset, indices: ArrayLike<number>, name = ds.name): ImageDataset {
  const per = ds.height * ds.width * ds.channels;
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    if (indices[k] < 0 || indices[k] >= ds.size) {
      throw new DataError(`${ds.name}: subset index ${indices[k]} is outside [0, ${ds.size})`);
    }
    labels[k] = ds.labels[indices[k]];
  }
  if (ds.images) {
    const images = new Uint8Array(indices.length * per);
    copyImages(ds.images, per, indices, images);
    return inMemoryDataset({...ds, name, images, labels});
  }
  const map = Int32Array.from(indices as ArrayLike<number>);
  return {
    ...ds, name, size: indices.length, labels, images: undefined,
    readImages: (idx, out) => ds.readImages(Array.from(idx, (i) => map[i]), out),
  };
}

/** Per-channel mean and standard deviation of pixel values scaled to [0, 1]. */
export function channelStats(ds: ImageDataset, maxExamples = 10000): {mean: number[], std: number[]} {
  if (!ds.images) throw new DataError(`${ds.name}: channelStats needs an in-memory dataset`);
  const C = ds.channels, n = Math.min(ds.size, maxExamples) * ds.height * ds.width;
  const s = new Float64Array(C), s2 = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      const v = ds.images[i * C + c] / 255;
      s[c] += v;
      s2[c] += v * v;
    }
  }
  const mean = Array.from(s, (v) => v / n);
  const std = Array.from(s2, (v, c) => Math.sqrt(Math.max(v / n - mean[c] * mean[c], 1e-12)));
  return {mean, std};
}

/**
 * Dataset names -> loaders. `loadDatasetPair` returns the train and test splits of a named
 * dataset, downloading first when asked, with clear errors for unknown names and missing
 * files.
 */

import {CIFAR_LAYOUT, loadCifar} from './cifar';
import {channelStats, DataError, ImageDataset, takeSubset} from './dataset';
import {defaultCacheDir, downloadDataset, DownloadOptions, REMOTE} from './download';
import {FASHION_MNIST_CLASSES, loadIdxDir, MNIST_CLASSES} from './idx';
import {loadImageFolder} from './image_folder';
import {loadSubset} from './subset';
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';

export const DATASET_NAMES = ['cifar10-subset', 'cifar10', 'cifar100', 'fashion-mnist', 'mnist', 'folder'] as const;
export type KnownDataset = typeof DATASET_NAMES[number];

/** Per-channel normalisation constants (mean, std of pixels in [0, 1]). */
export const NORMALISATION: Record<string, {mean: number[], std: number[]}> = {
  cifar10: {mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616]},
  cifar100: {mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762]},
  'fashion-mnist': {mean: [0.2860], std: [0.3530]},
  mnist: {mean: [0.1307], std: [0.3081]},
};

export interface LoadOptions {
  dataDir?: string | null;
  download?: boolean;
  downloadOptions?: DownloadOptions;
  /** Keep only the first N examples (0 = all). */
  trainLimit?: number;
  testLimit?: number;
  imageSize?: number;
  /** Image-folder channels (default 3). */
  channels?: number;
}

function limit(ds: ImageDataset, n: number | undefined): ImageDataset {
  if (!n || n >= ds.size) return ds;
  return takeSubset(ds, Array.from({length: n}, (_, i) => i), `${ds.name}[:${n}]`);
}

function cifarSource(name: 'cifar10' | 'cifar100', dataDir: string | null | undefined): string {
  const file = REMOTE[name][0].file;
  const candidates = dataDir ? [dataDir, nodePath.join(dataDir, file)] : [nodePath.join(defaultCacheDir(), file), nodePath.join(defaultCacheDir(), CIFAR_LAYOUT[name].dir)];
  for (const c of candidates) {
    if (nodeFs.existsSync(c) && (nodeFs.statSync(c).isFile() || nodeFs.existsSync(nodePath.join(c, CIFAR_LAYOUT[name].dir)) || nodeFs.existsSync(nodePath.join(c, CIFAR_LAYOUT[name].train[0])))) return c;
  }
  throw new DataError(`${name}: no data found (looked at ${candidates.join(', ')}); ` +
      `pass --data-dir with the ${file} archive or its extracted folder, or add --download`);
}

/** Loads the train and test splits of `name`. */
export async function loadDatasetPair(name: string, opts: LoadOptions = {}): Promise<{train: ImageDataset, test: ImageDataset}> {
  if (!(DATASET_NAMES as readonly string[]).includes(name)) {
    throw new DataError(`unknown dataset '${name}'; expected one of ${DATASET_NAMES.join(', ')}`);
  }
  const ds = name as KnownDataset;
  if (opts.download) {
    if (ds !== 'cifar10' && ds !== 'cifar100' && ds !== 'fashion-mnist') {
      throw new DataError(`--download is available for cifar10, cifar100 and fashion-mnist, not '${ds}'`);
    }
    await downloadDataset(ds, opts.dataDir ?? defaultCacheDir(), opts.downloadOptions);
  }
  let train: ImageDataset, test: ImageDataset;
  switch (ds) {
    case 'cifar10-subset': {
      const path = opts.dataDir ?? undefined;
      train = loadSubset('train', path);
      test = loadSubset('test', path);
      break;
    }
    case 'cifar10':
    case 'cifar100': {
      const src = cifarSource(ds, opts.dataDir);
      train = await loadCifar(src, ds, 'train');
      test = await loadCifar(src, ds, 'test');
      break;
    }
    case 'fashion-mnist':
    case 'mnist': {
      const dir = opts.dataDir ?? (ds === 'fashion-mnist' ? defaultCacheDir() : null);
      if (!dir) throw new DataError(`${ds}: pass --data-dir with the IDX files (train-images-idx3-ubyte.gz, ...)`);
      const names = ds === 'mnist' ? MNIST_CLASSES : FASHION_MNIST_CLASSES;
      train = loadIdxDir(dir, 'train', ds, names);
      test = loadIdxDir(dir, 'test', ds, names);
      break;
    }
    case 'folder': {
      const root = opts.dataDir;
      if (!root) throw new DataError(`folder: pass --data-dir with train/ and test/ (or val/) sub-folders of class folders`);
      const testDir = ['test', 'val'].map((d) => nodePath.join(root, d)).find((d) => nodeFs.existsSync(d));
      if (!nodeFs.existsSync(nodePath.join(root, 'train')) || !testDir) {
        throw new DataError(`folder: '${root}' must contain train/ and test/ (or val/), each with one folder per class`);
      }
      const o = {height: opts.imageSize ?? 32, width: opts.imageSize ?? 32, channels: opts.channels ?? 3};
      train = loadImageFolder(nodePath.join(root, 'train'), o);
      test = loadImageFolder(testDir, {...o, classNames: train.classNames});
      break;
    }
  }
  return {train: limit(train, opts.trainLimit), test: limit(test, opts.testLimit)};
}

/** Normalisation for a dataset: known constants, else computed from the training split. */
export function normalisationFor(name: string, train: ImageDataset): {mean: number[], std: number[]} {
  const key = name === 'cifar10-subset' ? 'cifar10' : name;
  if (NORMALISATION[key] && NORMALISATION[key].mean.length === train.channels) return NORMALISATION[key];
  if (train.images) {
    return channelStats(train);
  }
  return {mean: new Array(train.channels).fill(0.5), std: new Array(train.channels).fill(0.25)};
}

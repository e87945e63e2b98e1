/**
 * Builds the CIFAR-10 subset of the data package tfjs-karat-cifar10-subset
 * (packages/cifar10-subset/cifar10-subset.kds), the default data of `karat train`, from the full
 * CIFAR-10 binary archive:
 *
 *     npx tsx scripts/make-subset.ts [--src cifar-10-binary.tar.gz]   (default: the --download cache)
 *         [--train 5000] [--test 1000] [--out packages/cifar10-subset/cifar10-subset.kds]
 *
 * Class-balanced and deterministic: the first train/10 images of each class in the
 * archive's training order, and the first test/10 of each class of the test batch.
 */
import {mkdirSync, writeFileSync} from 'node:fs';
import {dirname, join} from 'node:path';

import {loadCifar} from '../src/data/cifar';
import {ImageDataset, takeSubset} from '../src/data/dataset';
import {defaultCacheDir} from '../src/data/download';
import {decodeSubset, encodeSubset} from '../src/data/subset';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

function balanced(ds: ImageDataset, n: number): number[] {
  const perClass = Math.floor(n / ds.numClasses);
  const taken = new Array(ds.numClasses).fill(0);
  const idx: number[] = [];
  for (let i = 0; i < ds.size && idx.length < perClass * ds.numClasses; i++) {
    if (taken[ds.labels[i]] < perClass) {
      taken[ds.labels[i]]++;
      idx.push(i);
    }
  }
  return idx;
}

async function main() {
  const src = arg('src', join(defaultCacheDir(), 'cifar-10-binary.tar.gz'));
  const out = arg('out', 'packages/cifar10-subset/cifar10-subset.kds');
  const nTrain = Number(arg('train', '5000')), nTest = Number(arg('test', '1000'));
  const t0 = Date.now();
  const train = await loadCifar(src, 'cifar10', 'train');
  const test = await loadCifar(src, 'cifar10', 'test');
  const tr = takeSubset(train, balanced(train, nTrain), 'cifar10-subset/train');
  const te = takeSubset(test, balanced(test, nTest), 'cifar10-subset/test');
  const bytes = encodeSubset([{name: 'train', ds: tr}, {name: 'test', ds: te}], {
    source: `cifar-10-binary.tar.gz, class-balanced first ${nTrain} train / ${nTest} test (scripts/make-subset.ts)`,
  });
  decodeSubset(bytes, out);  // round-trip check (verifies the SHA-256)
  mkdirSync(dirname(out), {recursive: true});
  writeFileSync(out, bytes);
  console.log(`wrote ${out}: ${tr.size} train + ${te.size} test images, ${(bytes.length / 1e6).toFixed(2)} MB, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

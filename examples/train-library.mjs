// Train a Fourier-KArAt ViT with the library API: the same recipe as `karat train`
// (AdamW, warm-up + cosine schedule, augmentation, checkpoints), from your own code.
//   npm run build && node examples/train-library.mjs [runs folder]
import {mkdtempSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

import * as karat from 'tfjs-karat/node';

const outDir = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'karat-runs-'));
// Later sources override earlier ones, as flags override a config file and a preset.
const config = karat.training.resolveConfig([{from: 'example', values: {
  preset: 'quick',             // the embedded CIFAR-10 subset, no download
  epochs: 1, stepsPerEpoch: 3, trainLimit: 96, testLimit: 50,   // tiny, for a quick look
  dim: 16, depth: 1, heads: 2, mlpRatio: 1, patchSize: 8, rank: 4,
  batchSize: 32, evalBatchSize: 50, backend: 'cpu', progress: 'none',
  outDir, runName: 'example',
}}]);

const result = await karat.training.train(config, {
  onEpoch: (r) => console.log(`epoch ${r.epoch}: train loss ${r.trainLoss.toFixed(3)}, test top-1 ${(100 * r.testTop1).toFixed(1)}%`),
});
console.log(`run folder: ${result.runDir}; last checkpoint: ${result.lastCheckpoint}`);
result.model.dispose();

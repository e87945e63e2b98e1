/**
 * `karat eval`: top-1/top-5, loss and a confusion matrix of a checkpoint on a dataset's test
 * split (the checkpoint's own dataset and normalisation unless flags say otherwise).
 */
import {BatchLoader} from '../data/loader';
import {NO_AUGMENT} from '../data/augment';
import {loadDatasetPair} from '../data/registry';
import {selectBackend} from '../training/backend';
import {CheckpointError, modelFromCheckpoint, readCheckpoint} from '../training/checkpoint';
import {BACKENDS, ConfigError, TrainConfig} from '../training/config';
import {formatConfusion} from '../training/metrics';
import {ModelSpec} from '../training/model';
import {evaluate} from '../training/trainer';
import {commandFlags, UsageError} from './flags';

export async function cmdEval(argv: string[]): Promise<number> {
  const flags = commandFlags('eval', argv, ['help', 'download'],
                            ['checkpoint', 'dataset', 'dataDir', 'backend', 'batchSize', 'testLimit', 'download']);
  if (flags.help) {
    console.log('usage: karat eval --checkpoint FILE [--dataset NAME] [--data-dir PATH] [--backend NAME] [--batch-size N] [--test-limit N]');
    return 0;
  }
  if (!flags.checkpoint) throw new UsageError('karat eval: --checkpoint FILE is required');
  const intFlag = (name: string, v: unknown, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min) throw new UsageError(`karat eval: --${name} must be an integer >= ${min}, got '${String(v)}'`);
    return n;
  };
  const testLimit = intFlag('test-limit', flags.testLimit, 0) ?? 0;
  const batchSize = intFlag('batch-size', flags.batchSize, 1) ?? 250;
  const ck = readCheckpoint(String(flags.checkpoint));
  const saved = (ck.header.trainer.config ?? {}) as Partial<TrainConfig>;
  const dataset = String(flags.dataset ?? saved.dataset ?? 'cifar10-subset');
  const backendName = String(flags.backend ?? 'auto');
  if (!BACKENDS.includes(backendName as never)) throw new ConfigError(`unknown backend '${backendName}'; expected one of ${BACKENDS.join(', ')}`);
  const backend = await selectBackend(backendName as TrainConfig['backend']);
  console.log(`backend: ${backend.name} — ${backend.detail}`);
  const {test} = await loadDatasetPair(dataset, {
    dataDir: (flags.dataDir as string | undefined) ?? (flags.dataset ? null : saved.dataDir ?? null),
    download: !!flags.download, testLimit, imageSize: saved.imageSize,
  });
  const spec = ck.header.modelSpec as ModelSpec;
  if (spec.numClasses !== test.numClasses) {
    throw new CheckpointError(`checkpoint '${flags.checkpoint}' has ${spec.numClasses} classes, dataset ${test.name} has ${test.numClasses}`);
  }
  const model = await modelFromCheckpoint(ck, `checkpoint '${flags.checkpoint}'`);
  const norm = (ck.header.trainer.normalisation as {mean: number[], std: number[]} | undefined) ?? {mean: [0, 0, 0], std: [1, 1, 1]};
  const bs = Math.min(batchSize, test.size);
  const loader = new BatchLoader(test, {batchSize: bs, train: false, augment: {...NO_AUGMENT, ...norm}, seed: 0});
  const ev = await evaluate(model, loader, test.numClasses);
  console.log(`checkpoint: ${flags.checkpoint} (epoch ${ck.header.trainer.epoch}, step ${ck.header.trainer.step})`);
  console.log(`dataset: ${test.name}, ${ev.examples} examples, ${ev.seconds.toFixed(1)} s`);
  console.log(`loss ${ev.loss.toFixed(4)}  top-1 ${(100 * ev.top1).toFixed(2)}%  top-5 ${(100 * ev.top5).toFixed(2)}%` +
      (ev.diverged ? `  DIVERGED: the loss is not finite; ${ev.nonFinite} of ${ev.examples} examples have non-finite logits (counted as wrong)` : '') + '\n');
  console.log(formatConfusion(ev.confusion, test.classNames, ev.nonFiniteByClass));
  return 0;
}

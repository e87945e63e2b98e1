/**
 * `karat info`: versions, backends (started one by one with --probe), presets and datasets, or
 * the header and training history of one checkpoint.
 */
import * as tf from '@tensorflow/tfjs-core';

import {AUTO_ORDER, activateBackend} from '../training/backend';
import {checkSpecFitsWeights, readCheckpoint} from '../training/checkpoint';
import {BACKENDS, DATASETS, PRESETS, TrainConfig} from '../training/config';
import {epochTable, table} from '../training/logging';
import {isTopologySpec, ModelSpec} from '../training/model';
import type {EpochRecord} from '../training/trainer';
import {version} from '../version';
import {commandFlags} from './flags';

export async function cmdInfo(argv: string[]): Promise<number> {
  const flags = commandFlags('info', argv, ['help', 'probe'], ['checkpoint', 'probe']);
  if (flags.help) {
    console.log('usage: karat info [--checkpoint FILE] [--probe]   (--probe starts every backend to see which work)');
    return 0;
  }
  console.log(`tfjs-karat ${version}, tfjs-core ${tf.version_core}, node ${process.version}, ${process.platform}-${process.arch}`);
  if (flags.checkpoint) {
    const ck = readCheckpoint(String(flags.checkpoint));
    checkSpecFitsWeights(ck, `checkpoint '${flags.checkpoint}'`);
    const t = ck.header.trainer;
    console.log(`checkpoint ${flags.checkpoint}: epoch ${t.epoch}, step ${t.step}, seed ${t.seed}, saved ${ck.header.createdAt}, backend ${t.backend}`);
    const spec = ck.header.modelSpec as ModelSpec;
    console.log(isTopologySpec(spec) ?
        `model: a layers topology (karat finetune), ${spec.imageSize.join('x')}x${spec.channels} images, ${spec.numClasses} classes` :
        `model: ${JSON.stringify(spec)}`);
    console.log(`weights: ${ck.header.weights.length} tensors, ${ck.header.weightFloats.toLocaleString('en-US')} parameters; optimizer state: ${ck.optimizer ? `step ${ck.optimizer.meta.step}` : 'none'}`);
    const hist = (t.history as EpochRecord[]) ?? [];
    if (hist.length) console.log(epochTable(hist));
    return 0;
  }
  console.log(`\nbackends (auto order: ${AUTO_ORDER.join(' > ')}):`);
  if (flags.probe) {
    const rows: string[][] = [];
    for (const b of BACKENDS.filter((b) => b !== 'auto') as Array<Exclude<TrainConfig['backend'], 'auto'>>) {
      try {
        const i = await activateBackend(b);
        rows.push([b, 'available', i.detail]);
      } catch (e) {
        rows.push([b, 'unavailable', (e as Error).message.slice(0, 100)]);
      }
    }
    console.log(table(['backend', 'status', 'detail'], rows));
  } else {
    console.log(`  ${BACKENDS.join(', ')}  (add --probe to start each one and report which work)`);
  }
  console.log('\npresets:');
  for (const [k, p] of Object.entries(PRESETS)) console.log(`  ${k.padEnd(16)} ${p.description}`);
  console.log(`\ndatasets: ${DATASETS.join(', ')}`);
  return 0;
}

/**
 * Child process for the atomic-checkpoint test: rewrites one checkpoint file in a loop
 * (each version ~8 MB, all values equal to the version number) until it is killed.
 *   node --import tsx test/support/ckpt_writer.ts FILE
 */
import {writeCheckpoint} from '../../src/training/checkpoint';

const file = process.argv[2];
const n = 2_000_000;
for (let version = 1; ; version++) {
  writeCheckpoint(file, {
    header: {format: 1, createdAt: new Date().toISOString(), modelSpec: {version}, weights: [{name: 'w', shape: [n]}],
      optimizer: null, trainer: {epoch: 0, step: version, seed: 0, version}, weightFloats: 0, optimizerFloats: 0},
    weights: [new Float32Array(n).fill(version)], optimizer: null,
  });
  if (version === 1) process.stdout.write('first\n');
}

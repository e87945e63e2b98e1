/**
 * Resuming a run: the checkpoint that --resume names (a file, a run folder, or 'auto' for this
 * run's own last.ckpt), checked against the run's configuration before anything is built.
 */
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';

import {Checkpoint, CheckpointError, readCheckpoint} from './checkpoint';
import {TrainConfig} from './config';

/** Fields that define the model: a checkpoint only fits a run with the same values. */
const MODEL_FIELDS = ['dataset', 'valSplit', 'dim', 'depth', 'heads', 'mlpRatio', 'patchSize', 'attention', 'grid', 'rank', 'mode', 'imageSize'] as const;

/** Finds the checkpoint file for --resume (a file, a run directory, or 'auto'). */
export function resolveResume(resume: string, runDir: string): string | null {
  if (resume === 'auto') {
    const p = nodePath.join(runDir, 'last.ckpt');
    return nodeFs.existsSync(p) ? p : null;
  }
  if (nodeFs.existsSync(resume) && nodeFs.statSync(resume).isDirectory()) {
    const p = nodePath.join(resume, 'last.ckpt');
    if (!nodeFs.existsSync(p)) throw new CheckpointError(`--resume: directory '${resume}' has no last.ckpt`);
    return p;
  }
  if (!nodeFs.existsSync(resume)) throw new CheckpointError(`--resume: checkpoint '${resume}' does not exist`);
  return resume;
}

/** The checkpoint --resume names, checked against this run's configuration; null for a fresh run. */
export function openResume(cfg: TrainConfig, runDir: string): {ck: Checkpoint, from: string} | null {
  if (!cfg.resume) return null;
  const from = resolveResume(cfg.resume, runDir);
  if (!from) return null;
  const ck = readCheckpoint(from);
  const saved = ck.header.trainer.config as Partial<TrainConfig> | undefined;
  if (saved) {
    const diff = MODEL_FIELDS.filter((k) => saved[k] !== undefined && saved[k] !== cfg[k])
        .map((k) => `${k}: checkpoint ${JSON.stringify(saved[k])}, this run ${JSON.stringify(cfg[k])}`);
    if (diff.length) {
      throw new CheckpointError(`--resume: checkpoint '${from}' is from an incompatible model/dataset (${diff.join('; ')})`);
    }
  }
  if (ck.header.trainer.seed === undefined) {
    throw new CheckpointError(`--resume: checkpoint '${from}' records no seed ('trainer.seed'), so the run cannot continue identically`);
  }
  return {ck, from};
}

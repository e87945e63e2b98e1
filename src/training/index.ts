/** The training recipe (karat.training): AdamW, schedules, checkpoints, the trainer, backends, logs and plots. */
export * from './adamw';
export * from './schedule';
export * from './metrics';
export * from './checkpoint';
export * from './config';
export * from './model';
export * from './trainer';
export {resolveResume} from './resume';
export {defaultRunName} from './run_dir';
export * from './param_groups';
export * from './backend';
export * from './logging';
export * from './plot';

/** Datasets, augmentation and batching for training (karat.data). Node-only functions load Node built-ins lazily. */
export * from './dataset';
export * from './rng';
export * from './augment';
export * from './loader';
export * from './cifar';
export * from './idx';
export * from './image_folder';
export * from './subset';
export * from './tar';
export * from './download';
export * from './registry';

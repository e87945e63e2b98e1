/**
 * Analyses of KArAt / softmax vision transformers: attention maps and rollout,
 * singular-value spectra, learned activation curves, loss landscape along the optimiser path,
 * weight distributions; with PNG/SVG rendering that needs no dependency (browser and Node).
 */
export * from './linalg';
export * from './png';
export * from './colormap';
export * from './svg';
export * from './rollout';
export * from './overlay';
export * from './curves';
export * from './model';
export * from './landscape';
export * from './report';

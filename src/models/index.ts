export {vit, paperConfig, resolveViTConfig, vitTokens, VIT_PRESETS, PAPER_CONFIG_NAMES, PAPER_RANK} from './vit';
export type {ViTArgs, ViTConfig, ViTPreset, ViTPresetName} from './vit';

export {KArAtMultiHeadAttention} from './multihead_attention';
export type {KArAtMultiHeadAttentionArgs, AttentionCallOptions, GraphCallOptions} from './multihead_attention';
export {KArAtOperator} from './karat_operator';
export {resolveAttention, serializeAttention, KARAT_MODES} from './attention_config';
export type {AttentionActivation, KArAtAttentionConfig, KArAtMode, ResolvedAttention} from './attention_config';
export {attentionCore, attentionScores} from './attention_core';
export type {AttentionCoreArgs, AttentionCoreResult, CoreActivation} from './attention_core';
export {ClassToken, LearnedPositionEmbedding, PatchEmbedding, SelectToken, StochasticDepth, transformerEncoderBlock} from './vit_blocks';
export type {ClassTokenArgs, LearnedPositionEmbeddingArgs, PatchEmbeddingArgs, SelectTokenArgs, StochasticDepthArgs, TransformerEncoderBlockArgs} from './vit_blocks';

export * from './kernel_names';
export {fourierKArAtHidden, fourierKArAtGrad, karatActivation, karatAttention, foldedAttention, hasFusedKernel, KARAT_FUSED_FLAG} from './fourier_karat';
export {compositeFourierKArAtHidden, compositeFourierKArAtGrad, fourierFeatures} from './composite';
export {KARAT_COMPOSITE_MAX_FLOATS_FLAG, compositeFloats} from './composite_limits';
export {KArAtArgumentError} from './validate';
export {leanGradients, leanVariableGrads, leanGradientsAvailable, enableLeanGradients, leanGradientsEnabled, leanGradientsSupportsVersion, LEAN_GRADIENTS_TFJS_VERSIONS} from './lean_grads';
export {projectHeads, mergeHeadsProject, softmaxAttention, fourierAttention, useLeanAttention, KArAtSoftmaxAttention, KArAtSoftmaxAttentionProbs, KArAtSoftmaxAttentionGradScores, SOFTMAX_ATTENTION_LIMITS, FOURIER_ATTENTION_LIMITS, fourierAttentionPath, KArAtFourierAttention, KArAtFourierAttentionHidden, KArAtFourierAttentionGradQ, KArAtFourierAttentionGradK, KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradProj} from './attention';

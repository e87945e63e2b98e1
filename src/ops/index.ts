export * from './kernel_names';
export {fourierKArAtHidden, fourierKArAtGrad, karatActivation, karatAttention, foldedAttention, hasFusedKernel, KARAT_FUSED_FLAG} from './fourier_karat';
export {compositeFourierKArAtHidden, compositeFourierKArAtGrad, fourierFeatures} from './composite';
export {KArAtArgumentError} from './validate';
export {leanGradients, leanVariableGrads, leanGradientsAvailable, enableLeanGradients, leanGradientsEnabled, leanGradientsSupportsVersion, LEAN_GRADIENTS_TFJS_VERSIONS} from './lean_grads';
export {projectHeads, mergeHeadsProject, softmaxAttention, fourierAttention, useLeanAttention, KArAtSoftmaxAttention, KArAtSoftmaxAttentionProbs, KArAtSoftmaxAttentionGradScores, SOFTMAX_ATTENTION_LIMITS} from './attention';

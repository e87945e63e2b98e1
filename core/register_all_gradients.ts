/**
 * Registers the gradient of every kernel of the package with tfjs (`tf.registerGradient`), one
 * `GradConfig` per file in gradients/. Imported once, by core/index.ts, so importing the
 * package registers them.
 */
import {GradConfig, registerGradient} from '@tensorflow/tfjs-core';

import {fourierKArAtGradConfig} from './gradients/FourierKArAt_grad';
import {biasGeluGradConfig} from './gradients/KArAtBiasGelu_grad';
import {layerNormGradConfig} from './gradients/KArAtLayerNorm_grad';
import {softmaxGradConfig} from './gradients/KArAtSoftmax_grad';

const gradConfigs: GradConfig[] = [
  fourierKArAtGradConfig,
  layerNormGradConfig,
  biasGeluGradConfig,
  softmaxGradConfig,
];

for (const gradientConfig of gradConfigs) {
  registerGradient(gradientConfig);
}

/** Registers the WebGL kernels of the op contract with tfjs (backend 'webgl'). */
import {KernelConfig, registerKernel} from '@tensorflow/tfjs-core';

import {fourierKArAtWebGLConfig} from './fourier_karat';
import {fourierKArAtGradWebGLConfig} from './fourier_karat_grad';

export const webglKernelConfigs: KernelConfig[] = [fourierKArAtWebGLConfig, fourierKArAtGradWebGLConfig];

for (const config of webglKernelConfigs) registerKernel(config);

/**
 * Registers the WebGPU kernels of the op contract with tfjs (backend 'webgpu').
 * Imports nothing from @tensorflow/tfjs-backend-webgpu at runtime (types only): the
 * kernels use the backend object tfjs passes them, so this loads without that package.
 */
import {KernelConfig, registerKernel} from '@tensorflow/tfjs-core';

import {fourierKArAtConfig} from './kernels/FourierKArAt';
import {fourierKArAtGradConfig} from './kernels/FourierKArAtGrad';

export const webgpuKernelConfigs: KernelConfig[] = [fourierKArAtConfig, fourierKArAtGradConfig];

for (const config of webgpuKernelConfigs) registerKernel(config);

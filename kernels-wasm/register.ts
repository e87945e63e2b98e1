/**
 * Registers the wasm kernels of the op contract with tfjs (backend 'wasm').
 * Imports nothing from @tensorflow/tfjs-backend-wasm at runtime (types only): the kernels
 * use the backend object tfjs passes them, so this loads without that package.
 */
import {KernelConfig, registerKernel} from '@tensorflow/tfjs-core';

import {fourierKArAtConfig} from './fourier_karat';
import {fourierKArAtGradConfig} from './fourier_karat_grad';

export const wasmKernelConfigs: KernelConfig[] = [fourierKArAtConfig, fourierKArAtGradConfig];

for (const config of wasmKernelConfigs) registerKernel(config);

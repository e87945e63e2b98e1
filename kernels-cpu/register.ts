/** Registers the CPU kernels of the op contract with tfjs (backend 'cpu'). */
import {KernelConfig, registerKernel} from '@tensorflow/tfjs-core';

import {fourierKArAtConfig} from './fourier_karat';
import {fourierKArAtGradConfig} from './fourier_karat_grad';

export const cpuKernelConfigs: KernelConfig[] = [fourierKArAtConfig, fourierKArAtGradConfig];

for (const config of cpuKernelConfigs) registerKernel(config);

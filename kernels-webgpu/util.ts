/** Buffer views shared by the Fourier-KArAt kernels of backend 'webgpu'. */
import type {TensorInfo} from '@tensorflow/tfjs-core';

import type {FourierKArAtDims} from '../core/kernel_names';

/**
 * coeffs [h,2,r,N,G] seen as [h*2*r, N*G]: the same GPU buffer under a rank-2 shape
 * (tfjs-backend-webgpu cannot generate every helper for rank-5 tensors). Used only as a
 * program input for the duration of one dispatch, so no reference count is taken.
 */
export function coeffsView(coeffs: TensorInfo, d: Pick<FourierKArAtDims, 'heads' | 'rank' | 'tokens' | 'grid'>): TensorInfo {
  return {dataId: coeffs.dataId, shape: [d.heads * 2 * d.rank, d.tokens * d.grid], dtype: coeffs.dtype};
}

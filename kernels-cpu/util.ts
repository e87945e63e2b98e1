import type {BackendValues, DataId, DataType, TensorInfo} from '@tensorflow/tfjs-core';

/** The part of tfjs-backend-cpu's MathBackendCPU the kernels use. */
export interface CpuLikeBackend {
  readSync(dataId: DataId): BackendValues;
  makeTensorInfo(shape: number[], dtype: DataType, values?: BackendValues): TensorInfo;
}

export function readValues(backend: CpuLikeBackend, t: TensorInfo): Float32Array {
  return backend.readSync(t.dataId) as Float32Array;
}

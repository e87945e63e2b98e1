/**
 * Shared start of the WebGPU benchmarks (bench/webgpu*.ts): sets up Dawn and makes 'webgpu'
 * the active backend, or prints why it is unavailable, sets exit code 2 and returns null.
 */
import * as tf from '@tensorflow/tfjs-core';

import * as karat from '../src/index';
import {setupWebGPUNode} from '../test/support/webgpu_node';

export interface WebGPUBenchMeta {
  date: string;
  adapter?: string;
  adapterInfo?: Record<string, unknown>;
  timestampQuery: boolean | null;
  node: string;
  karat: string;
  deferredSubmitBatch: unknown;
}

export async function startWebGPUBench(): Promise<WebGPUBenchMeta | null> {
  const status = await setupWebGPUNode();
  if (!status.available) {
    console.error(`WebGPU unavailable: ${status.reason}`);
    process.exitCode = 2;
    return null;
  }
  await tf.setBackend('webgpu');
  const backend = tf.backend() as unknown as {adapterInfo?: Record<string, unknown>, supportTimestampQuery?: boolean};
  return {
    date: new Date().toISOString(), adapter: status.adapter, adapterInfo: backend.adapterInfo,
    timestampQuery: backend.supportTimestampQuery ?? null, node: process.version, karat: karat.version,
    deferredSubmitBatch: tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE'),
  };
}

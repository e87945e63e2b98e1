/**
 * Starts the `tensorflow` backend of @tensorflow/tfjs-node for the test/tensorflow suites (one
 * mocha process of their own, see scripts/test.mjs), or says why it cannot, and registers it
 * for describeWithBackends (test/support/backend_suites.ts) twice: 'tensorflow' runs the
 * Fourier-KArAt composite path (KARAT_FUSED off), 'tensorflow-fused-op' the fused op library
 * loaded into TensorFlow (kernels-cuda/tensorflow; skipped where it is not built).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import {loadTensorFlowKernels, TensorFlowKernelStatus} from '../../kernels-cuda/tensorflow/loader';
import {KARAT_FUSED_FLAG} from '../../src/index';
import {registerTestBackend, TestBackend} from './backend_suites';

let unavailable: string | null | undefined;

/** Loads tfjs-node once; null when its backend runs, else why not. Leaves cpu active. */
export async function startTensorFlow(): Promise<string | null> {
  if (unavailable !== undefined) return unavailable;
  try {
    // a variable specifier: the typecheck must pass on a clone without the optional peer
    const pkg = '@tensorflow/tfjs-node';
    await import(pkg);
    const ok = tf.findBackendFactory('tensorflow') != null && await tf.setBackend('tensorflow');
    unavailable = ok ? null : 'tfjs-node loaded but its backend did not initialise';
  } catch (e) {
    unavailable = `@tensorflow/tfjs-node is not installed or its binding did not load ` +
        `(scripts/tfjs-node-from-wheel.sh builds it): ${(e as Error).message.split('\n')[0]}`;
  }
  await tf.setBackend('cpu');
  return unavailable;
}

/** Skips the suite (with the reason) where the tensorflow backend is not available. */
export async function skipWithoutTensorFlow(ctx: Mocha.Context): Promise<void> {
  const why = await startTensorFlow();
  if (why != null) {
    console.warn(`!!! SKIPPED: backend tensorflow is not available here: ${why}`);
    ctx.skip();
  }
}

let fusedStatus: TensorFlowKernelStatus | undefined;

/**
 * Loads the fused op library into tfjs-node's TensorFlow (once per process, cpu active after);
 * null when it loaded, else why not.
 */
export async function startTensorFlowFusedOp(): Promise<string | null> {
  const why = await startTensorFlow();
  if (why != null) return why;
  if (fusedStatus == null) {
    await tf.setBackend('tensorflow');
    fusedStatus = loadTensorFlowKernels();
    await tf.setBackend('cpu');
  }
  return fusedStatus.loaded ? null : `the op library did not load (${fusedStatus.step}: ${fusedStatus.reason}); ` +
      'scripts/tfjs-node-from-wheel.sh builds it (make -C kernels-cuda tfops-cpu)';
}

/** tensorflow with the Fourier-KArAt composite path. */
export const TENSORFLOW: TestBackend = {id: 'tensorflow', backend: 'tensorflow', flags: {[KARAT_FUSED_FLAG]: false},
                                         start: startTensorFlow, timeout: 120000};
/** tensorflow with the fused op library. */
export const TENSORFLOW_FUSED_OP: TestBackend = {id: 'tensorflow-fused-op', backend: 'tensorflow',
                                                 flags: {[KARAT_FUSED_FLAG]: true}, start: startTensorFlowFusedOp, timeout: 120000};

registerTestBackend(TENSORFLOW);
registerTestBackend(TENSORFLOW_FUSED_OP);

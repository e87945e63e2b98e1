/**
 * Starts the `tensorflow` backend of @tensorflow/tfjs-node for the test/tensorflow suites (one
 * mocha process of their own, see scripts/test.mjs), or says why it cannot.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

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

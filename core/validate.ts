/**
 * Argument checks shared by every op. Errors always name the op, the argument,
 * the expected shape (with the sizes already fixed by other arguments) and the actual one.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Expected size of one axis: a number, or null for "any size". */
export type Dim = number | null;

export class KArAtArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KArAtArgumentError';
  }
}

function fmt(expected: ReadonlyArray<Dim>, names: ReadonlyArray<string>): string {
  return `[${expected.map((d, i) => (d == null ? names[i] : `${names[i]}=${d}`)).join(', ')}]`;
}

/**
 * Checks that `x` is a float32 tensor of the given rank whose axes match `expected`
 * (null = free). `names` names the axes for the message, e.g. ['B', 'h', 'N', 'N'].
 */
export function checkTensor(
    op: string, arg: string, x: unknown, names: ReadonlyArray<string>,
    expected: ReadonlyArray<Dim> = names.map(() => null)): tf.Tensor {
  if (!(x instanceof tf.Tensor)) {
    throw new KArAtArgumentError(
        `${op}: argument '${arg}' must be a tf.Tensor of shape ${fmt(expected, names)}, ` +
        `got ${x === null ? 'null' : typeof x}`);
  }
  if (x.isDisposed) {
    throw new KArAtArgumentError(`${op}: argument '${arg}' has been disposed`);
  }
  if (x.rank !== names.length) {
    throw new KArAtArgumentError(
        `${op}: argument '${arg}' must have rank ${names.length} with shape ` +
        `${fmt(expected, names)}, got rank ${x.rank} with shape [${x.shape.join(', ')}]`);
  }
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i];
    if (e != null && x.shape[i] !== e) {
      throw new KArAtArgumentError(
          `${op}: argument '${arg}' must have shape ${fmt(expected, names)}, ` +
          `got [${x.shape.join(', ')}] (axis ${i} '${names[i]}' is ${x.shape[i]}, expected ${e})`);
    }
  }
  if (x.dtype !== 'float32') {
    throw new KArAtArgumentError(
        `${op}: argument '${arg}' must have dtype float32, got ${x.dtype}`);
  }
  return x;
}

export function checkPositiveInt(op: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new KArAtArgumentError(`${op}: argument '${arg}' must be an integer >= 1, got ${String(v)}`);
  }
  return v;
}

/** Checks the pair (scores, coeffs) of the Fourier-KArAt contract; returns the sizes. */
export function checkFourierInputs(op: string, scores: unknown, coeffs: unknown) {
  const s = checkTensor(op, 'scores', scores, ['B', 'h', 'N', 'N']) as tf.Tensor4D;
  const [B, h, N, N2] = s.shape;
  if (N !== N2) {
    throw new KArAtArgumentError(
        `${op}: argument 'scores' must be square in its last two axes [B, h, N, N], ` +
        `got [${s.shape.join(', ')}]`);
  }
  const c = checkTensor(op, 'coeffs', coeffs, ['h', '2', 'r', 'N', 'G'], [h, 2, null, N, null]) as tf.Tensor5D;
  const r = c.shape[2], G = c.shape[4];
  if (r < 1) throw new KArAtArgumentError(`${op}: rank r (coeffs axis 2) must be >= 1, got ${r}`);
  if (G < 1) throw new KArAtArgumentError(`${op}: grid G (coeffs axis 4) must be >= 1, got ${G}`);
  if (B < 1 || h < 1 || N < 1) {
    throw new KArAtArgumentError(
        `${op}: argument 'scores' must have non-empty axes, got [${s.shape.join(', ')}]`);
  }
  return {scores: s, coeffs: c, B, h, N, r, G};
}

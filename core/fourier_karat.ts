/**
 * The Fourier-KArAt ops, each a tfjs-core `op()`: fourierKArAtHidden and fourierKArAtGrad
 * dispatch to the FourierKArAt / FourierKArAtGrad kernel registered for the active backend
 * (kernel_names.ts) and otherwise fall back to the composite implementation, so they work on
 * every tfjs backend; karatActivation, karatAttention and foldedAttention are built on them.
 * The gradient of FourierKArAt is gradients/FourierKArAt_grad.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import {op} from '@tensorflow/tfjs-core';

import {matMulPerHead, matMulPerHeadTransposedLeft} from './head_matmul';
import {compositeFourierKArAtGrad, compositeFourierKArAtHidden} from './composite';
import {checkCompositeMemory} from './composite_limits';
import {hasFusedKernel} from './flags';
import {FourierKArAt, FourierKArAtGrad} from './kernel_names';
import {checkFourierInputs, checkTensor, KArAtArgumentError} from './validate';


/**
 * ĥ = Fourier-KArAt hidden activations, shape [B, h, N, r].
 * @param scores [B, h, N, N] attention scores S = QKᵀ/√d
 * @param coeffs [h, 2, r, N, G] cosine (index 0) and sine (index 1) coefficients
 */
function fourierKArAtHidden_(scores: tf.Tensor4D, coeffs: tf.Tensor5D): tf.Tensor4D {
  const c = checkFourierInputs('fourierKArAtHidden', scores, coeffs);
  if (hasFusedKernel(FourierKArAt)) {
    return tf.engine().runKernel(FourierKArAt, {scores: c.scores, coeffs: c.coeffs}, {}) as tf.Tensor4D;
  }
  checkCompositeMemory('fourierKArAtHidden', c.B, c.h, c.N, c.G);
  return compositeFourierKArAtHidden(c.scores, c.coeffs);
}
export const fourierKArAtHidden = op({fourierKArAtHidden_});

/** [dScores, dCoeffs] for upstream dy = dL/dĥ; the fused kernel when there is one. */
function fourierKArAtGrad_(
    dy: tf.Tensor4D, scores: tf.Tensor4D, coeffs: tf.Tensor5D): [tf.Tensor4D, tf.Tensor5D] {
  const c = checkFourierInputs('fourierKArAtGrad', scores, coeffs);
  checkTensor('fourierKArAtGrad', 'dy', dy, ['B', 'h', 'N', 'r'], [c.B, c.h, c.N, c.r]);
  if (hasFusedKernel(FourierKArAtGrad)) {
    const out = tf.engine().runKernel(
        FourierKArAtGrad, {dy, scores: c.scores, coeffs: c.coeffs}, {}) as unknown as tf.Tensor[];
    return [out[0] as tf.Tensor4D, out[1] as tf.Tensor5D];
  }
  checkCompositeMemory('fourierKArAtGrad', c.B, c.h, c.N, c.G);
  return compositeFourierKArAtGrad(dy, c.scores, c.coeffs);
}
export const fourierKArAtGrad = op({fourierKArAtGrad_});

function checkProj(op: string, proj: unknown, h: number, N: number, r: number): tf.Tensor3D {
  return checkTensor(op, 'proj', proj, ['h', 'N', 'r'], [h, N, r]) as tf.Tensor3D;
}

/**
 * σ̂(S) = ĥ Wᵀ per head, shape [B, h, N, N]: the activated attention matrix.
 * Forms the N x N matrix; use karatAttention when only σ̂(S)·V is needed.
 * @param proj [h, N, r] back-projection W
 */
function karatActivation_(scores: tf.Tensor4D, coeffs: tf.Tensor5D, proj: tf.Tensor3D): tf.Tensor4D {
  const op = 'karatActivation';
  const c = checkFourierInputs(op, scores, coeffs);
  const w = checkProj(op, proj, c.h, c.N, c.r);
  return matMulPerHead(fourierKArAtHidden(c.scores, c.coeffs), w, true);
}
export const karatActivation = op({karatActivation_});

/**
 * σ̂(S)·V, shape [B, h, N, dv], computed as ĥ (Wᵀ V) so the N x N activated matrix is
 * never formed (spec §4, identity 2).
 * @param values [B, h, N, dv]
 */
function karatAttention_(
    scores: tf.Tensor4D, coeffs: tf.Tensor5D, proj: tf.Tensor3D, values: tf.Tensor4D): tf.Tensor4D {
  const op = 'karatAttention';
  const c = checkFourierInputs(op, scores, coeffs);
  const w = checkProj(op, proj, c.h, c.N, c.r);
  const v = checkTensor(op, 'values', values, ['B', 'h', 'N', 'dv'], [c.B, c.h, c.N, null]) as tf.Tensor4D;
  return foldedAttention(fourierKArAtHidden, c.scores, c.coeffs, w, v);
}
export const karatAttention = op({karatAttention_});

/** ĥ (Wᵀ V) for any hidden-activation function (shared by Fourier and general KArAt). */
function foldedAttention_<P>(
    hiddenFn: (s: tf.Tensor4D, p: P) => tf.Tensor4D, scores: tf.Tensor4D, params: P,
    proj: tf.Tensor3D, values: tf.Tensor4D): tf.Tensor4D {
  const hidden = hiddenFn(scores, params);
  return tf.matMul(hidden, matMulPerHeadTransposedLeft(proj, values)) as tf.Tensor4D;
}
export const foldedAttention = op({foldedAttention_});

export {KArAtArgumentError};

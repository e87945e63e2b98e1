/**
 * Memory-lean attention ops, built from stock tfjs ops with explicit gradients
 * (tf.customGrad), so they run on every backend and keep for the backward pass only what it
 * needs:
 *
 *   projectHeads(x [B,N,F], kernel [F,h,d], bias [h,d] | null, scale)      -> [B,h,N,d]
 *       y = scale · (x W + b), split into heads. Saves x and W (stock ops would also keep the
 *       matmul output, the biased output and the scaled copy alive for their gradients).
 *   mergeHeadsProject(o [B,h,T,dv], kernel [h,dv,...out], bias [...out] | null) -> [B,T,...out]
 *       the attention output projection. Saves the merged heads and W.
 *   softmaxAttention(q [B,h,T,d], k [B,h,S,d], v [B,h,S,dv])                -> [B,h,T,dv]
 *       softmax(q kᵀ) v, flash-style backward: saves q, k, v only and recomputes the T x S
 *       probabilities in the backward pass (the [B,h,T,S] scores and probabilities are never
 *       kept between forward and backward).
 *
 *   fourierAttention(q, k, v [B,h,N,·], coeffs [h,2,r,N,G], proj [h,N,r])  -> [B,h,N,dv]
 *       modular Fourier-KArAt attention with a zero base activation, through the fold
 *       ĥ(q kᵀ) (projᵀ v). Flash-style where the KArAtFourierAttention* kernels are registered
 *       (webgpu) and the sizes are within FOURIER_ATTENTION_LIMITS: no N x N tensor in either
 *       pass (see below). Otherwise the materialising path: saves q, k, v (and the parameters),
 *       recomputes the N x N scores and ĥ, then runs FourierKArAtGrad (fused or composite).
 *
 * Kernels (named, with their inputs, in kernel_names.ts; a backend may register them,
 * kernels-webgpu/ does): softmaxAttention runs KArAtSoftmaxAttention, KArAtSoftmaxAttentionProbs
 * and KArAtSoftmaxAttentionGradScores for S <= SOFTMAX_ATTENTION_LIMITS.keys and
 * d, dv <= SOFTMAX_ATTENTION_LIMITS.headDim; beyond them, and without the kernels, the op runs
 * the composite (matMul, softmaxLastAxis, matMul). Backward with the kernels: Probs, GradScores
 * and three matmuls (dq = dS k, dk = dSᵀ q, dv = Pᵀ dy).
 *
 * The flash-style fourierAttention runs the six KArAtFourierAttention* kernels with
 * u = projᵀ v [B,h,r,dv] (one batched matmul per call) and dh = dL/dĥ [B,h,N,r]; the score
 * gradient dS of spec §3 is formed per tile inside the kernels. Forward: u and
 * one kernel (2 dispatches); saved: q, k, v, coeffs, proj, u. Backward: dh = dy uᵀ, ĥ (Hidden),
 * du = ĥᵀ dy, GradQ, GradK, GradCoeffs, dv = proj du, GradProj (8 dispatches). Memory per call
 * O(B·h·N·(r + d)).
 *
 * The same kernels run in the forward pass as with the stock composition (on webgpu the
 * softmax is the fused KArAtSoftmax kernel and its backward the one-dispatch
 * KArAtSoftmaxGrad, via softmaxLastAxisGrad). KArAtMultiHeadAttention uses these ops when `fusedLayersOn()`
 * (flags.ts: flag KARAT_FUSED_LAYERS on, the default; any backend) for its projections, and
 * softmaxAttention when there is no mask, no attention dropout and no returned scores.
 */
import * as tf from '@tensorflow/tfjs-core';
import {op} from '@tensorflow/tfjs-core';

import {hasFusedKernel} from './flags';
import {fourierKArAtGrad, fourierKArAtHidden} from './fourier_karat';
import {softmaxLastAxis, softmaxLastAxisGrad} from './fused_layers';
import {FOURIER_ATTENTION_LIMITS, KArAtFourierAttention, KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradK, KArAtFourierAttentionGradProj, KArAtFourierAttentionGradQ, KArAtFourierAttentionHidden, KArAtSoftmaxAttention, KArAtSoftmaxAttentionGradScores, KArAtSoftmaxAttentionProbs, SOFTMAX_ATTENTION_LIMITS} from './kernel_names';
import {checkTensor, KArAtArgumentError} from './validate';


const FOURIER_ATTENTION_KERNELS = [
  KArAtFourierAttention, KArAtFourierAttentionHidden, KArAtFourierAttentionGradQ, KArAtFourierAttentionGradK,
  KArAtFourierAttentionGradCoeffs, KArAtFourierAttentionGradProj,
];

/**
 * Which path fourierAttention takes for these sizes on `backendName` (default: the active one): 'flash' when all
 * six KArAtFourierAttention* kernels are registered (and KARAT_FUSED is on) and the sizes are
 * within FOURIER_ATTENTION_LIMITS, else 'materialise' (the N x N scores, FourierKArAt /
 * FourierKArAtGrad or their composites).
 */
export function fourierAttentionPath(dims: {B: number, h: number, N: number, d: number, r: number, G: number},
                                     backendName = tf.getBackend()): 'flash' | 'materialise' {
  const L = FOURIER_ATTENTION_LIMITS;
  const fits = dims.r <= L.rank && dims.G <= L.grid && dims.d <= L.headDim && dims.N <= L.tokens &&
      dims.B * dims.h <= L.batchHeads;
  return fits && FOURIER_ATTENTION_KERNELS.every((k) => hasFusedKernel(k, backendName)) ? 'flash' : 'materialise';
}

interface GradResult {value: tf.Tensor, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[]}

/** tf.customGrad over a variable number of tensor inputs. */
function withGrad(inputs: tf.Tensor[], f: (ts: tf.Tensor[], save: tf.GradSaveFunc) => GradResult): tf.Tensor {
  const n = inputs.length;
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) =>
    f(args.slice(0, n) as tf.Tensor[], args[n] as tf.GradSaveFunc))(...inputs);
}

/**
 * x W + bias (bias over the last axis, given in any shape of that many elements): one fused
 * matmul, except on wasm, whose _FusedMatMul checks the rank of the bias's *buffer* (the
 * variable's [h, d]) rather than of the reshaped tensor and rejects it (tfjs 4.22).
 */
function matMulBias(a: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor): tf.Tensor2D {
  const b = tf.reshape(bias, [w.shape[1]]);
  return (tf.getBackend() === 'wasm' ? tf.add(tf.matMul(a, w), b) : tf.fused.matMul({a, b: w, bias: b})) as tf.Tensor2D;
}

function checkScale(op: string, scale: unknown): number {
  if (typeof scale !== 'number' || !Number.isFinite(scale)) {
    throw new KArAtArgumentError(`${op}: argument 'scale' must be a finite number, got ${String(scale)}`);
  }
  return scale;
}

/** y = scale · (x W + b) split into heads: x [B,N,F], kernel [F,h,d], bias [h,d] -> [B,h,N,d]. */
function projectHeads_(x: tf.Tensor3D, kernel: tf.Tensor3D, bias: tf.Tensor2D | null = null, scale = 1): tf.Tensor4D {
  const op = 'projectHeads';
  const xt = checkTensor(op, 'x', x, ['B', 'N', 'F']) as tf.Tensor3D;
  const F = xt.shape[2];
  const w = checkTensor(op, 'kernel', kernel, ['F', 'h', 'd'], [F]) as tf.Tensor3D;
  const [, h, d] = w.shape;
  const b = bias == null ? null : checkTensor(op, 'bias', bias, ['h', 'd'], [h, d]) as tf.Tensor2D;
  checkScale(op, scale);
  const [B, N] = xt.shape;
  const forward = (xx: tf.Tensor3D, ww: tf.Tensor3D, bb: tf.Tensor2D | null) => {
    const a = tf.reshape(xx, [B * N, F]) as tf.Tensor2D;
    const w2 = tf.reshape(ww, [F, h * d]) as tf.Tensor2D;
    let y: tf.Tensor = bb == null ? tf.matMul(a, w2) : matMulBias(a, w2, bb);
    if (scale !== 1) y = tf.mul(y, scale);
    return tf.transpose(tf.reshape(y, [B, N, h, d]), [0, 2, 1, 3]) as tf.Tensor4D;
  };
  const backward = (dy: tf.Tensor4D, xx: tf.Tensor3D, ww: tf.Tensor3D) => {
    let g: tf.Tensor = tf.reshape(tf.transpose(dy, [0, 2, 1, 3]), [B * N, h * d]);
    if (scale !== 1) g = tf.mul(g, scale);
    const dx = tf.reshape(tf.matMul(g as tf.Tensor2D, tf.reshape(ww, [F, h * d]) as tf.Tensor2D, false, true), [B, N, F]);
    const dw = tf.reshape(tf.matMul(tf.reshape(xx, [B * N, F]) as tf.Tensor2D, g as tf.Tensor2D, true, false), [F, h, d]);
    return {dx, dw, db: tf.reshape(tf.sum(g, 0), [h, d])};
  };
  return withGrad(b == null ? [xt, w] : [xt, w, b], (ts, save) => {
    save([ts[0], ts[1]]);
    return {
      value: forward(ts[0] as tf.Tensor3D, ts[1] as tf.Tensor3D, (ts[2] ?? null) as tf.Tensor2D | null),
      gradFunc: (dy, saved) => {
        const r = backward(dy as tf.Tensor4D, saved[0] as tf.Tensor3D, saved[1] as tf.Tensor3D);
        if (b != null) return [r.dx, r.dw, r.db];
        r.db.dispose();
        return [r.dx, r.dw];
      },
    };
  }) as tf.Tensor4D;
}
export const projectHeads = op({projectHeads_});

/**
 * The attention output projection: o [B,h,T,dv] with heads merged, times kernel [h,dv,...out]
 * plus bias [...out] -> [B,T,...out].
 */
function mergeHeadsProject_(o: tf.Tensor4D, kernel: tf.Tensor, bias: tf.Tensor | null = null): tf.Tensor {
  const op = 'mergeHeadsProject';
  const ot = checkTensor(op, 'o', o, ['B', 'h', 'T', 'dv']) as tf.Tensor4D;
  const [B, h, T, dv] = ot.shape;
  if (!(kernel instanceof tf.Tensor) || kernel.rank < 3) checkTensor(op, 'kernel', kernel, ['h', 'dv', '...out']);
  if (kernel.shape[0] !== h || kernel.shape[1] !== dv) {
    throw new KArAtArgumentError(
        `${op}: argument 'kernel' must have shape [${h}, ${dv}, ...out] to match o [${ot.shape}], got [${kernel.shape}]`);
  }
  const outShape = kernel.shape.slice(2);
  const outSize = outShape.reduce((a, b) => a * b, 1);
  if (bias != null && (!(bias instanceof tf.Tensor) || bias.size !== outSize || bias.rank !== outShape.length)) {
    throw new KArAtArgumentError(`${op}: argument 'bias' must have shape [${outShape}]`);
  }
  const merge = (oo: tf.Tensor) => tf.reshape(tf.transpose(oo, [0, 2, 1, 3]), [B * T, h * dv]) as tf.Tensor2D;
  const w2 = (ww: tf.Tensor) => tf.reshape(ww, [h * dv, outSize]) as tf.Tensor2D;
  const backward = (dy: tf.Tensor, m: tf.Tensor2D, ww: tf.Tensor) => {
    const g = tf.reshape(dy, [B * T, outSize]) as tf.Tensor2D;
    const dm = tf.matMul(g, w2(ww), false, true);
    return {
      dO: tf.transpose(tf.reshape(dm, [B, T, h, dv]), [0, 2, 1, 3]),
      dW: tf.reshape(tf.matMul(m, g, true, false), kernel.shape),
      db: tf.reshape(tf.sum(g, 0), outShape),
    };
  };
  return withGrad(bias == null ? [ot, kernel] : [ot, kernel, bias], (ts, save) => {
    const m = merge(ts[0]);
    save([m, ts[1]]);
    const y = ts.length === 2 ? tf.matMul(m, w2(ts[1])) :
        matMulBias(m, w2(ts[1]), ts[2]);
    return {
      value: tf.reshape(y, [B, T, ...outShape]),
      gradFunc: (dy, saved) => {
        const r = backward(dy, saved[0] as tf.Tensor2D, saved[1]);
        if (bias != null) return [r.dO, r.dW, r.db];
        r.db.dispose();
        return [r.dO, r.dW];
      },
    };
  });
}
export const mergeHeadsProject = op({mergeHeadsProject_});

/**
 * softmax(q kᵀ) v over the last axis, q [B,h,T,d] (already scaled), k [B,h,S,d], v [B,h,S,dv]
 * -> [B,h,T,dv]. The backward pass recomputes the probabilities from the saved q and k
 * (flash-attention style), so nothing of size T x S is kept between the passes.
 */
function softmaxAttention_(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
  const op = 'softmaxAttention';
  const qt = checkTensor(op, 'q', q, ['B', 'h', 'T', 'd']) as tf.Tensor4D;
  const [B, h, , d] = qt.shape;
  const kt = checkTensor(op, 'k', k, ['B', 'h', 'S', 'd'], [B, h, null, d]) as tf.Tensor4D;
  const S = kt.shape[2];
  const vt = checkTensor(op, 'v', v, ['B', 'h', 'S', 'dv'], [B, h, S]) as tf.Tensor4D;
  const dv = vt.shape[3];
  const L = SOFTMAX_ATTENTION_LIMITS;
  const fits = S <= L.keys && d <= L.headDim && dv <= L.headDim;
  const fused = (name: string) => fits && hasFusedKernel(name);
  const probs = (qq: tf.Tensor4D, kk: tf.Tensor4D): tf.Tensor4D => fused(KArAtSoftmaxAttentionProbs) ?
      tf.engine().runKernel(KArAtSoftmaxAttentionProbs, {q: qq, k: kk}) as tf.Tensor4D :
      softmaxLastAxis(tf.matMul(qq, kk, false, true)) as tf.Tensor4D;
  const gradScores = (qq: tf.Tensor4D, kk: tf.Tensor4D, vv: tf.Tensor4D, dy: tf.Tensor4D, p: tf.Tensor4D): tf.Tensor4D => {
    if (fused(KArAtSoftmaxAttentionGradScores)) {
      return tf.engine().runKernel(KArAtSoftmaxAttentionGradScores, {q: qq, k: kk, v: vv, dy}) as tf.Tensor4D;
    }
    return softmaxLastAxisGrad(tf.matMul(dy, vv, false, true), p) as tf.Tensor4D;
  };
  return withGrad([qt, kt, vt], ([qq, kk, vv], save) => {
    save([qq, kk, vv]);
    const value = fused(KArAtSoftmaxAttention) ?
        tf.engine().runKernel(KArAtSoftmaxAttention, {q: qq, k: kk, v: vv}) as tf.Tensor :
        tf.matMul(probs(qq as tf.Tensor4D, kk as tf.Tensor4D), vv as tf.Tensor4D);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [sq, sk, sv] = saved as tf.Tensor4D[];
        const p = probs(sq, sk);
        const ds = gradScores(sq, sk, sv, dy as tf.Tensor4D, p);
        return [tf.matMul(ds, sk), tf.matMul(ds, sq, true, false), tf.matMul(p, dy as tf.Tensor4D, true, false)];
      },
    };
  }) as tf.Tensor4D;
}
export const softmaxAttention = op({softmaxAttention_});

/**
 * Modular Fourier-KArAt attention σ̂(q kᵀ) v = ĥ(q kᵀ) · (projᵀ v) (spec's fold; zero base
 * activation), q [B,h,N,d] (already scaled), k [B,h,N,d], v [B,h,N,dv], coeffs [h,2,r,N,G],
 * proj [h,N,r] -> [B,h,N,dv]. Flash path (fourierAttentionPath): the scores are formed inside
 * the kernels, per tile, in both passes. Materialising path: keeps q, k, v for the backward
 * pass, which recomputes the N x N scores and ĥ instead of keeping them.
 */
function fourierAttention_(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, coeffs: tf.Tensor5D,
                                 proj: tf.Tensor3D): tf.Tensor4D {
  const op = 'fourierAttention';
  const qt = checkTensor(op, 'q', q, ['B', 'h', 'N', 'd']) as tf.Tensor4D;
  const [B, h, N, d] = qt.shape;
  const kt = checkTensor(op, 'k', k, ['B', 'h', 'N', 'd'], [B, h, N, d]) as tf.Tensor4D;
  const vt = checkTensor(op, 'v', v, ['B', 'h', 'N', 'dv'], [B, h, N]) as tf.Tensor4D;
  const c = checkTensor(op, 'coeffs', coeffs, ['h', '2', 'r', 'N', 'G'], [h, 2, null, N]) as tf.Tensor5D;
  const r = c.shape[2];
  const w = checkTensor(op, 'proj', proj, ['h', 'N', 'r'], [h, N, r]) as tf.Tensor3D;
  // projᵀ v per head as one batch-broadcast matmul [1,h,N,r]ᵀ x [B,h,N,dv] -> [B,h,r,dv] (one
  // dispatch; the explicit backward below needs no gradient of the broadcast).
  const projTv = (ww: tf.Tensor, vv: tf.Tensor) =>
    tf.matMul(tf.reshape(ww, [1, h, N, r]) as tf.Tensor4D, vv as tf.Tensor4D, true, false);
  const G = c.shape[4];
  if (fourierAttentionPath({B, h, N, d, r, G}) === 'flash') return flashFourierAttention(qt, kt, vt, c, w, projTv);
  return withGrad([qt, kt, vt, c, w], ([qq, kk, vv, cc, ww], save) => {
    save([qq, kk, vv, cc, ww]);
    const hidden = fourierKArAtHidden(tf.matMul(qq as tf.Tensor4D, kk as tf.Tensor4D, false, true), cc as tf.Tensor5D);
    return {
      value: tf.matMul(hidden, projTv(ww, vv)),
      gradFunc: (dy, saved) => {
        const [sq, sk, sv] = saved as tf.Tensor4D[];
        const [sc, sw] = [saved[3] as tf.Tensor5D, saved[4] as tf.Tensor3D];
        const s = tf.matMul(sq, sk, false, true) as tf.Tensor4D;
        const hid = fourierKArAtHidden(s, sc);                  // [B,h,N,r]
        const u = projTv(sw, sv);                               // projᵀ v [B,h,r,dv]
        const dHidden = tf.matMul(dy as tf.Tensor4D, u, false, true) as tf.Tensor4D;
        const dU = tf.matMul(hid, dy as tf.Tensor4D, true, false);  // [B,h,r,dv]
        const [ds, dCoeffs] = fourierKArAtGrad(dHidden, s, sc);
        const dV = tf.matMul(tf.reshape(sw, [1, h, N, r]) as tf.Tensor4D, dU);     // proj dU, batch broadcast
        const dProj = tf.sum(tf.matMul(sv, dU, false, true), 0);  // Σ_b v dUᵀ [h,N,r]
        return [tf.matMul(ds, sk), tf.matMul(ds, sq, true, false), dV, dCoeffs, dProj];
      },
    };
  }) as tf.Tensor4D;
}
export const fourierAttention = op({fourierAttention_});

/** fourierAttention through the KArAtFourierAttention* kernels (sizes already checked). */
function flashFourierAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, coeffs: tf.Tensor5D, proj: tf.Tensor3D,
                               projTv: (w: tf.Tensor, v: tf.Tensor) => tf.Tensor): tf.Tensor4D {
  const [h, N, r] = proj.shape;
  const run = (name: string, inputs: tf.NamedTensorMap) => tf.engine().runKernel(name, inputs) as tf.Tensor;
  return withGrad([q, k, v, coeffs, proj], ([qq, kk, vv, cc, ww], save) => {
    const u = projTv(ww, vv);                                     // projᵀ v [B,h,r,dv]
    save([qq, kk, vv, cc, ww, u]);
    return {
      value: run(KArAtFourierAttention, {q: qq, k: kk, coeffs: cc, u}),
      gradFunc: (dy, saved) => {
        const [sq, sk, sv, sc, sw, su] = saved;
        const dh = tf.matMul(dy as tf.Tensor4D, su as tf.Tensor4D, false, true);        // dL/dĥ [B,h,N,r]
        const hid = run(KArAtFourierAttentionHidden, {q: sq, k: sk, coeffs: sc}) as tf.Tensor4D;
        const du = tf.matMul(hid, dy as tf.Tensor4D, true, false);                       // [B,h,r,dv]
        const grads = {q: sq, k: sk, coeffs: sc, dh};
        return [
          run(KArAtFourierAttentionGradQ, grads),
          run(KArAtFourierAttentionGradK, grads),
          tf.matMul(tf.reshape(sw, [1, h, N, r]) as tf.Tensor4D, du),                   // proj du, batch broadcast
          run(KArAtFourierAttentionGradCoeffs, grads),
          run(KArAtFourierAttentionGradProj, {v: sv, du}),
        ];
      },
    };
  }) as tf.Tensor4D;
}

/**
 * Memory-lean reverse mode for tfjs: `leanGradients` and `leanVariableGrads` compute
 * exactly what `tf.engine().gradients` / `tf.variableGrads` compute — the same gradient kernels
 * in the same order, so the results are bitwise identical — but free memory while walking the
 * tape backward, as PyTorch's autograd does:
 *
 *  - the accumulated gradient of a tensor is disposed as soon as the node that produced the
 *    tensor has been back-propagated (tfjs keeps every intermediate gradient alive until the
 *    whole backward pass ends);
 *  - the tensors a node saved for its gradient (inputsToSave / outputsToSave) are released right
 *    after that node's gradient ran (tfjs releases all of them at the very end);
 *  - the temporaries of each node's gradient (e.g. the zeros tfjs makes for unused outputs) are
 *    freed per node.
 *
 * So the backward pass peaks near the forward activations instead of activations plus every
 * gradient of every intermediate. This works for any model (softmax or KArAt, any backend).
 *
 * It relies on tfjs-core's engine internals (the tape in `engine.state.activeTape`, and
 * `startTape` / `endTape` / `scopedRun`), reached only through tfjs_internals.ts, and was written
 * and tested against tfjs-core 4.22.x (LEAN_GRADIENTS_TFJS_VERSIONS). On any other tfjs-core version, when the internals are
 * missing, or inside another gradient computation (higher-order gradients), the functions run
 * tfjs's own backward pass instead (same results, tfjs's memory use); the version fallback says
 * so once on the console. It is opt-in: nothing in tfjs changes until a caller uses
 * leanGradients / leanVariableGrads or enableLeanGradients().
 */
import * as tf from '@tensorflow/tfjs-core';

import {engineGradientsReplaced, engineInternalsSupported, gradientDepth, nextTensorId, noteOnce, recordTape, releaseTape,
        replaceEngineGradients, setTfjsVersionForTesting, stockEngineGradients, type TapeNode, TFJS_INTERNALS_VERSIONS,
        tfjsInternalsSupportVersion, tfjsVersion} from './tfjs_internals';
import {KArAtArgumentError} from './validate';

/** The tfjs-core versions the lean backward pass was written for and is tested against. */
export const LEAN_GRADIENTS_TFJS_VERSIONS = TFJS_INTERNALS_VERSIONS;

/** True when `version` (a tfjs-core version string) is one the lean backward pass supports. */
export function leanGradientsSupportsVersion(version: string): boolean {
  return tfjsInternalsSupportVersion(version);
}

export {setTfjsVersionForTesting};

/** Says once (console.warn) that this tfjs-core version gets tfjs's own backward pass. */
function noteUnsupportedVersion(): void {
  noteOnce('leanGradients',
           `tfjs-karat: the lean backward pass was written for tfjs-core ${LEAN_GRADIENTS_TFJS_VERSIONS}; ` +
           `this is tfjs-core ${tfjsVersion()}, so tfjs's own backward pass runs instead (same gradients, ` +
           `tfjs's memory use).`);
}

/**
 * True when the lean backward pass is available: tfjs-core is a version it was written for
 * (LEAN_GRADIENTS_TFJS_VERSIONS) and exposes the engine internals it needs.
 */
export function leanGradientsAvailable(): boolean {
  return engineInternalsSupported();
}

/** A tape node with its inputs pruned to those that are a function of xs. */
type PathNode = {node: TapeNode, inputs: Record<string, tf.Tensor>};

/**
 * The tape nodes on a path from `xs` to `y`, each with its inputs pruned to those that are a
 * function of `xs` (the same selection as tfjs's own backward pass).
 */
function nodesXToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): PathNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodeFromX = tape.map((node) => {
    const any = Object.values(node.inputs).some((t) => fromX.has(t.id));
    if (any) node.outputs.forEach((o) => fromX.add(o.id));
    return any;
  });
  const toY = new Set<number>([y.id]);
  const nodeToY = new Array<boolean>(tape.length).fill(false);
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      nodeToY[i] = true;
      Object.values(node.inputs).forEach((t) => toY.add(t.id));
    }
  }
  const out: PathNode[] = [];
  tape.forEach((node, i) => {
    if (!nodeFromX[i] || !nodeToY[i]) return;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [name, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[name] = t;
    out.push({node, inputs});
  });
  return out;
}

/**
 * Routes every tfjs gradient computation through the lean backward pass: tf.grad, tf.grads,
 * tf.valueAndGrad(s), tf.variableGrads, optimizer.minimize and so LayersModel.fit. Same
 * gradients bit for bit, lower peak memory. `enableLeanGradients(false)` restores tfjs's own.
 * Returns whether the lean pass is now active (false on a tfjs-core version it was not written
 * for, with a one-time console note, or when tfjs lacks the engine internals it needs; nothing is
 * changed then).
 */
export function enableLeanGradients(enable = true): boolean {
  if (typeof enable !== 'boolean') {
    throw new KArAtArgumentError(`enableLeanGradients: argument 'enable' must be a boolean, got ${String(enable)}`);
  }
  if (enable && !engineGradientsReplaced()) {
    if (!engineInternalsSupported()) {
      if (!leanGradientsSupportsVersion(tfjsVersion())) noteUnsupportedVersion();
      return false;
    }
    replaceEngineGradients((f, xs, dy, allowNoGradients) => leanGradients(f, xs, dy, allowNoGradients ?? false));
  } else if (!enable) {
    replaceEngineGradients(null);
  }
  return engineGradientsReplaced();
}

/** True while enableLeanGradients() has routed tfjs's gradients through the lean pass. */
export function leanGradientsEnabled(): boolean {
  return engineGradientsReplaced();
}

/** The value of f and the gradients of f with respect to each of xs (null where f does not depend on it). */
export type LeanGradients = {value: tf.Tensor, grads: Array<tf.Tensor | null>};

function checkGradientsArgs(f: unknown, xs: unknown, dy: unknown): void {
  if (typeof f !== 'function') throw new KArAtArgumentError(`leanGradients: argument 'f' must be a function`);
  if (!Array.isArray(xs) || xs.length === 0 || !xs.every((x) => x instanceof tf.Tensor)) {
    throw new KArAtArgumentError(`leanGradients: argument 'xs' must be a non-empty array of tensors`);
  }
  if (dy != null && (!(dy instanceof tf.Tensor) || dy.dtype !== 'float32')) {
    throw new KArAtArgumentError(`leanGradients: argument 'dy' must be a float32 tensor`);
  }
}

/**
 * As `tf.engine().gradients(f, xs, dy)`: returns {value: f(), grads: d value / d xs} (null for an
 * x that `f` does not depend on when `allowNoGradients`), freeing intermediate gradients and saved
 * tensors during the backward pass. `dy` (default ones) is not disposed.
 */
export function leanGradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor | null,
                              allowNoGradients = false): LeanGradients {
  checkGradientsArgs(f, xs, dy);
  const supported = engineInternalsSupported();
  if (!supported || gradientDepth() > 0) {
    if (!supported && !leanGradientsSupportsVersion(tfjsVersion())) noteUnsupportedVersion();
    return stockEngineGradients()(f, xs, dy ?? undefined, allowNoGradients);
  }
  const {result: y, tape} = recordTape(f);
  if (!(y instanceof tf.Tensor)) {
    throw new KArAtArgumentError('leanGradients: the result y returned by f() must be a tensor');
  }
  const path = nodesXToY(tape, xs, y);
  if (!allowNoGradients && path.length === 0) {
    throw new KArAtArgumentError(
        'leanGradients: cannot compute the gradient of y = f(x) with respect to x: no operation ' +
        'of f connects x to y');
  }
  try {
    return tf.tidy('backward', () => backward(path, xs, y, dy)) as unknown as LeanGradients;
  } finally {
    // As tfjs: the tape and every tensor it saved are released after the backward pass.
    for (const node of tape) (node.saved ?? []).forEach((t) => t.dispose());
    releaseTape();
  }
}

/** The backward pass over `path` (in reverse), freeing as it goes; returns {value: y, grads}. */
function backward(path: PathNode[], xs: tf.Tensor[], y: tf.Tensor, dy?: tf.Tensor | null): tf.TensorContainer {
  const keepIds = new Set<number>(xs.map((x) => x.id));
  const acc = new Map<number, tf.Tensor>();
  acc.set(y.id, dy ?? tf.onesLike(y));
  if (dy != null) keepIds.add(y.id);
  for (let i = path.length - 1; i >= 0; i--) backpropNode(path[i], acc, keepIds);
  // (tidy keeps tensors nested in the result; null entries are allowed at run time.)
  return {value: y, grads: xs.map((x) => acc.get(x.id) ?? null)} as unknown as tf.TensorContainer;
}

/**
 * Back-propagates one tape node: adds the gradients of its inputs to `acc`, then frees its
 * output gradients (except those of `keepIds`) and the tensors it saved.
 */
function backpropNode({node, inputs}: PathNode, acc: Map<number, tf.Tensor>, keepIds: Set<number>): void {
  if (node.gradient == null) {
    throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
  }
  const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
  const names = Object.keys(inputs);
  const dxs = inputGradients(node, names, dys);
  names.forEach((name, k) => accumulate(node, name, inputs[name], dxs[k], acc));
  // This node's output gradients and saved tensors are no longer needed.
  node.outputs.forEach((o) => {
    if (keepIds.has(o.id)) return;
    const g = acc.get(o.id);
    if (g != null) {
      g.dispose();
      acc.delete(o.id);
    }
  });
  (node.saved ?? []).forEach((t) => t.dispose());
}

/** The node's gradients for the inputs `names`, each a tensor owned by the caller alone. */
function inputGradients(node: TapeNode, names: string[], dys: Array<tf.Tensor | null>): tf.Tensor[] {
  const mark = nextTensorId();
  return tf.tidy(() => {
    const fns = node.gradient!(dys);
    const seen = new Set<tf.Tensor>();
    return names.map((name) => {
      if (!(name in fns)) {
        throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(fns)}.`);
      }
      let dx = fns[name]();
      // Each accumulated gradient must be owned by the map alone, so that disposing it
      // later cannot free a tensor someone else holds (a dy passed through unchanged, a
      // saved tensor, the same tensor returned for two inputs).
      if (dx.id < mark || seen.has(dx)) dx = tf.clone(dx);
      seen.add(dx);
      return dx;
    });
  });
}

/** Checks dx against input x of `node` and adds it to x's accumulated gradient. */
function accumulate(node: TapeNode, name: string, x: tf.Tensor, dx: tf.Tensor, acc: Map<number, tf.Tensor>): void {
  if (dx.dtype !== 'float32') {
    throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
  }
  if (!tf.util.arraysEqual(dx.shape, x.shape)) {
    throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
  }
  const cur = acc.get(x.id);
  if (cur == null) {
    acc.set(x.id, dx);
  } else {
    acc.set(x.id, tf.add(cur, dx));
    cur.dispose();
    dx.dispose();
  }
}

/**
 * Drop-in replacement for `tf.variableGrads(f, varList)` with the lean backward pass of
 * `leanGradients`: same arguments, same result ({value, grads} by variable name, bitwise equal),
 * lower peak memory.
 */
export function leanVariableGrads(f: () => tf.Scalar, varList?: tf.Variable[]): {value: tf.Scalar, grads: tf.NamedTensorMap} {
  if (typeof f !== 'function') throw new KArAtArgumentError(`leanVariableGrads: argument 'f' must be a function`);
  if (varList != null && !(Array.isArray(varList) && varList.every((v) => v instanceof tf.Variable))) {
    throw new KArAtArgumentError(`leanVariableGrads: argument 'varList' must be an array of tf.Variable`);
  }
  const specified = varList != null;
  const all = specified ? varList : Object.values(tf.engine().registeredVariables);
  const trainable = all.filter((v) => v.trainable);
  if (trainable.length === 0) {
    throw new KArAtArgumentError(
        `leanVariableGrads: at least one variable must be trainable, but none of the ${all.length} is`);
  }
  const {value, grads} = leanGradients(f, trainable, null, true);
  if (!grads.some((g) => g != null)) {
    tf.dispose(value);
    throw new KArAtArgumentError(
        'leanVariableGrads: no variable is connected to the result of f; make sure the operations ' +
        'that use the variables run inside f');
  }
  if (value.rank !== 0) {
    tf.dispose([value, ...grads.filter((g): g is tf.Tensor => g != null)]);
    throw new KArAtArgumentError(`leanVariableGrads: f must return a scalar, but it returned a rank-${value.rank} tensor`);
  }
  const named: tf.NamedTensorMap = {};
  trainable.forEach((v, i) => {
    if (grads[i] != null) named[v.name] = grads[i]!;
  });
  if (specified) all.filter((v) => !v.trainable).forEach((v) => named[v.name] = null as unknown as tf.Tensor);
  return {value: value as tf.Scalar, grads: named};
}

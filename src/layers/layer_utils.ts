/**
 * Helpers shared by the layers: parse/serialise initializer, regularizer and constraint
 * identifiers exactly as tfjs-layers does (through a throwaway Dense layer, because
 * tfjs-layers does not export getInitializer & co. from its public entry), shape helpers.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../../core/validate';

export type Initializer = ReturnType<typeof tfl.initializers.zeros>;
export type Regularizer = ReturnType<typeof tfl.regularizers.l2>;
export type Constraint = ReturnType<typeof tfl.constraints.maxNorm>;
// Identifiers as tfjs-layers accepts them: a string ('glorotUniform'), a {className, config}
// dict, or an instance.
export type InitializerArg = string | Initializer | tf.serialization.ConfigDict;
export type RegularizerArg = string | Regularizer | tf.serialization.ConfigDict;
export type ConstraintArg = string | Constraint | tf.serialization.ConfigDict;

export interface WeightArgs {
  kernelInitializer?: InitializerArg;
  biasInitializer?: InitializerArg;
  kernelRegularizer?: RegularizerArg;
  biasRegularizer?: RegularizerArg;
  activityRegularizer?: RegularizerArg;
  kernelConstraint?: ConstraintArg;
  biasConstraint?: ConstraintArg;
}

export interface ParsedWeightArgs {
  kernelInitializer: Initializer;
  biasInitializer: Initializer;
  kernelRegularizer: Regularizer | null;
  biasRegularizer: Regularizer | null;
  activityRegularizer: Regularizer | null;
  kernelConstraint: Constraint | null;
  biasConstraint: Constraint | null;
}

let parseCounter = 0;

/** Parses weight arguments with tfjs-layers' own rules (defaults glorotUniform / zeros). */
export function parseWeightArgs(args: WeightArgs, defaults: {kernel?: string, bias?: string} = {}):
    ParsedWeightArgs {
  // tslint:disable-next-line:no-any
  const d = tfl.layers.dense({
    units: 1,
    name: `karat_weight_args_parser_${parseCounter++}`,
    kernelInitializer: (args.kernelInitializer ?? defaults.kernel ?? 'glorotUniform') as any,
    biasInitializer: (args.biasInitializer ?? defaults.bias ?? 'zeros') as any,
    kernelRegularizer: (args.kernelRegularizer ?? undefined) as any,
    biasRegularizer: (args.biasRegularizer ?? undefined) as any,
    activityRegularizer: (args.activityRegularizer ?? undefined) as any,
    kernelConstraint: (args.kernelConstraint ?? undefined) as any,
    biasConstraint: (args.biasConstraint ?? undefined) as any,
  }) as unknown as Record<string, unknown>;
  return {
    kernelInitializer: d.kernelInitializer as Initializer,
    biasInitializer: d.biasInitializer as Initializer,
    kernelRegularizer: (d.kernelRegularizer ?? null) as Regularizer | null,
    biasRegularizer: (d.biasRegularizer ?? null) as Regularizer | null,
    activityRegularizer: (d.activityRegularizer ?? null) as Regularizer | null,
    kernelConstraint: (d.kernelConstraint ?? null) as Constraint | null,
    biasConstraint: (d.biasConstraint ?? null) as Constraint | null,
  };
}

/** {className, config} of a serializable object, or null. */
export function serializeObject(x: tf.serialization.Serializable | null | undefined):
    tf.serialization.ConfigDict | null {
  if (x == null) return null;
  return {className: x.getClassName(), config: x.getConfig()};
}

export function serializeWeightArgs(p: ParsedWeightArgs): tf.serialization.ConfigDict {
  return {
    kernelInitializer: serializeObject(p.kernelInitializer),
    biasInitializer: serializeObject(p.biasInitializer),
    kernelRegularizer: serializeObject(p.kernelRegularizer),
    biasRegularizer: serializeObject(p.biasRegularizer),
    activityRegularizer: serializeObject(p.activityRegularizer),
    kernelConstraint: serializeObject(p.kernelConstraint),
    biasConstraint: serializeObject(p.biasConstraint),
  };
}

/** A fresh copy of an initializer (so that sibling weights are not initialised identically). */
export function cloneInitializer(init: Initializer): Initializer {
  return parseWeightArgs({kernelInitializer: serializeObject(init)!}).kernelInitializer;
}

/** tfjs layer shapes: a single Shape or a list of Shapes. */
export type Shape = Array<number | null>;

export function isShapeList(s: Shape | Shape[]): s is Shape[] {
  return Array.isArray(s) && s.length > 0 && Array.isArray(s[0]);
}

export function checkPositiveIntArg(layer: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new KArAtArgumentError(`${layer}: argument '${arg}' must be an integer >= 1, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function checkRate(layer: string, arg: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) {
    throw new KArAtArgumentError(`${layer}: argument '${arg}' must be a number in [0, 1), got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * tfjs-layers 4.22 cannot run a layer that has an activity regularizer (Layer.apply throws
 * NotImplementedError), and a direct call() would skip it: refuse it up front, by name.
 */
export function rejectActivityRegularizer(layer: string, arg: unknown): void {
  if (arg != null) {
    throw new KArAtArgumentError(
        `${layer}: argument 'activityRegularizer' is not supported (tfjs-layers 4.22 cannot run ` +
        `layers with an activity regularizer); add the penalty to the loss instead`);
  }
}

/** Keys of WeightArgs. */
export const WEIGHT_ARG_KEYS: readonly string[] = [
  'kernelInitializer', 'biasInitializer', 'kernelRegularizer', 'biasRegularizer', 'activityRegularizer',
  'kernelConstraint', 'biasConstraint',
];

/**
 * Arguments of tfjs-layers' base Layer that our layers accept (and what their configs hold),
 * plus `customObjects`, which tfjs' deserialiser adds to every config it passes to fromConfig.
 */
export const BASE_LAYER_ARG_KEYS: readonly string[] = [
  'name', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'weights', 'inputDType', 'dtype',
  'customObjects',
];

/**
 * Throws a KArAtArgumentError naming the first key of `args` that is not in `known`: no
 * argument is ever silently ignored (a typo, or an option this layer does not implement).
 */
export function checkKnownArgs(layer: string, args: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(args)) {
    if (args[k] !== undefined && !known.includes(k)) {
      throw new KArAtArgumentError(
          `${layer}: unknown argument '${k}'; the arguments are ${known.join(', ')}`);
    }
  }
}

/**
 * Base-layer arguments that we pass to the tfjs Layer constructor. dtype: only float32 is
 * supported (a string, or a Keras dtype-policy config naming float32); anything else is an error.
 */
export function baseLayerArgs(args: Record<string, unknown>, layer = 'layer'): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['name', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'weights',
                   'inputDType']) {
    if (args[k] !== undefined) out[k] = args[k];
  }
  const dt = args.dtype;
  if (dt != null) {
    const name = typeof dt === 'string' ? dt :
        (typeof dt === 'object' && (dt as {config?: {name?: unknown}}).config?.name) || null;
    if (name !== 'float32') {
      throw new KArAtArgumentError(`${layer}: argument 'dtype' must be 'float32' (the only dtype supported), got ${JSON.stringify(dt)}`);
    }
    if (typeof dt === 'string') out.dtype = dt;
  }
  return out;
}

/**
 * tf.serialization.registerClass, unless a class of that name is already registered: when
 * several copies of this package are loaded in one process (ESM + CJS builds, a bundle), the
 * first one keeps the names, so that models loaded later use one consistent set of classes.
 */
export function registerClassOnce<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>): void {
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  if (map[cls.className] == null) tf.serialization.registerClass(cls);
}

/** Duck-typed class check that also recognises instances from another copy of the package. */
export function hasClassName(x: unknown, className: string): boolean {
  return x != null && typeof (x as {getClassName?: unknown}).getClassName === 'function' &&
      (x as {getClassName(): string}).getClassName() === className;
}

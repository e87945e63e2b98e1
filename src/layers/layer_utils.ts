/**
 * Helpers shared by the layers: parse/serialise initializer, regularizer and constraint
 * identifiers exactly as tfjs-layers does (through a throwaway Dense layer, because
 * tfjs-layers does not export getInitializer & co. from its public entry), shape helpers.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

import {KArAtArgumentError} from '../ops/validate';

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

/** Base-layer arguments that we pass to the tfjs Layer constructor (dtype kept only if a string). */
export function baseLayerArgs(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['name', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'weights',
                   'inputDType']) {
    if (args[k] !== undefined) out[k] = args[k];
  }
  if (typeof args.dtype === 'string') out.dtype = args.dtype;
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

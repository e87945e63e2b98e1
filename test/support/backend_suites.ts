/**
 * Every-backend test suites (tfjs's describeWithFlags idea, for mocha): a registry of test
 * backends (a tfjs backend name, the flags it runs with, and how to start it), and
 * describeWithBackends(name, constraints, tests), which defines one mocha suite per registered
 * backend that the constraints admit. Each suite starts its backend (skipping with the reason
 * when it cannot run here: no Dawn adapter, no tfjs-node, a browser without WebGL2), sets the
 * backend's and the suite's flags, makes it the active backend, and restores the previous
 * backend and every flag it touched after. The case tables (test/support/*_cases.ts) are
 * written once and run by these suites on every backend; the reference helpers below compare a
 * case on the suite's backend with the cpu backend and with a float64 reference.
 *
 * cpu is registered here. test/support/node_backends.ts registers wasm and webgpu (Dawn) for the
 * Node suites, test/support/tensorflow_node.ts the tensorflow backend (tfjs-node, its own mocha
 * process), test/browser/backends.ts webgl and webgpu in Chromium. Browser-safe: tfjs and mocha's
 * globals only.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

import {maxErrorOverUnit} from './reference';

export type FlagValue = boolean | number | string;
export type Flags = Record<string, FlagValue>;

/** One environment the every-backend suites run in (tfjs's TestEnv). */
export interface TestBackend {
  /** Unique, for suite titles and constraints: 'cpu', 'webgpu', 'tensorflow-fused-op'. */
  id: string;
  /** The tfjs backend name passed to tf.setBackend. */
  backend: string;
  /** Flags set while this environment's suites run (restored after). */
  flags?: Flags;
  /** Makes the backend available; resolves to null, or to why it cannot run here. */
  start(): Promise<string | null>;
  /** mocha timeout of its suites in ms (slow software GPUs), when above the default. */
  timeout?: number;
}

export interface BackendConstraints {
  /** Environment ids to run on; every registered one when omitted. */
  backends?: string[];
  /** Flags set for these suites on top of the environment's (restored after). */
  flags?: Flags;
}

const REGISTRY: TestBackend[] = [];

/** Adds (or replaces, by id) an environment; suites defined after this call run on it. */
export function registerTestBackend(env: TestBackend): void {
  const at = REGISTRY.findIndex((e) => e.id === env.id);
  if (at >= 0) REGISTRY[at] = env;
  else REGISTRY.push(env);
}

export function registeredTestBackends(): TestBackend[] {
  return [...REGISTRY];
}

export const CPU: TestBackend = {id: 'cpu', backend: 'cpu', start: async () => null};
registerTestBackend(CPU);

function matches(env: TestBackend, c: BackendConstraints): boolean {
  return c.backends == null || c.backends.includes(env.id);
}

function activeBackendName(): string | null {
  try {
    return tf.engine().backendName ?? null;
  } catch {
    return null;
  }
}

/** Sets `flags`; returns a function that puts back what was there. */
export function setFlags(flags: Flags): () => void {
  const saved: Array<[string, FlagValue]> = Object.keys(flags).map((k) => [k, tf.env().get(k)]);
  for (const [k, v] of Object.entries(flags)) tf.env().set(k, v);
  return () => {
    for (const [k, v] of saved.reverse()) tf.env().set(k, v);
  };
}

/** Runs `fn` with `flags` set, restoring them after (also when it throws). */
export async function withFlags<T>(flags: Flags, fn: () => Promise<T> | T): Promise<T> {
  const restore = setFlags(flags);
  try {
    return await fn();
  } finally {
    restore();
  }
}

/**
 * One mocha suite `${name} [${env.id}]` per registered environment admitted by `constraints`,
 * with `env` active (before each test) and its flags set while its tests run; skipped, saying
 * why, where the environment is not available.
 */
export function describeWithBackends(name: string, constraints: BackendConstraints,
                                     tests: (this: Mocha.Suite, env: TestBackend) => void): void {
  const envs = REGISTRY.filter((e) => matches(e, constraints));
  if (envs.length === 0) {
    throw new Error(`${name}: no registered test backend among [${constraints.backends}] ` +
                    `(registered: ${REGISTRY.map((e) => e.id).join(', ')})`);
  }
  for (const env of envs) {
    describe(`${name} [${env.id}]`, function() {
      if (env.timeout != null) this.timeout(env.timeout);
      let restoreFlags: (() => void) | null = null;
      let previous: string | null = null;
      before(async function() {
        const why = await env.start();
        if (why != null) {
          console.warn(`!!! SKIPPED: backend ${env.id} is not available here: ${why}`);
          this.skip();
        }
        previous = activeBackendName();
        restoreFlags = setFlags({...env.flags, ...constraints.flags});
        await useBackend(env.backend);
      });
      // a test that switched backends (to compute a cpu reference, say) does not leak it
      beforeEach(async () => {
        await useBackend(env.backend);
      });
      after(async () => {
        restoreFlags?.();
        restoreFlags = null;
        if (previous != null && activeBackendName() !== previous) await tf.setBackend(previous);
      });
      tests.call(this, env);
    });
  }
}

/** Makes `backend` active; throws if it does not start. */
export async function useBackend(backend: string): Promise<void> {
  if (activeBackendName() === backend) return;
  if (!await tf.setBackend(backend)) throw new Error(`tf.setBackend('${backend}') failed`);
}

/** The values of `ts`, which are disposed (also when reading fails). */
export async function readAndDispose(ts: tf.Tensor[]): Promise<Float32Array[]> {
  try {
    return await Promise.all(ts.map((t) => t.data() as Promise<Float32Array>));
  } finally {
    tf.dispose(ts);
  }
}

/** The values of fn()'s tensors (tidied, then disposed) on the active backend. */
export function valuesOf(fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  return readAndDispose(tf.tidy(fn));
}

/** fn() on `backend`, then the previously active backend again. */
export async function onBackend<T>(backend: string, fn: () => Promise<T>): Promise<T> {
  const previous = activeBackendName();
  await useBackend(backend);
  try {
    return await fn();
  } finally {
    if (previous != null) await useBackend(previous);
  }
}

/** fn() on the cpu backend (the reference of the other backends), the active backend restored. */
export function onCpu<T>(fn: () => Promise<T>): Promise<T> {
  return onBackend('cpu', fn);
}

/** Throws unless maxErrorOverUnit(got[i], ref[i]) < tol for every output. */
export function expectBelowOverUnit(got: ArrayLike<number>[], ref: ArrayLike<number>[], tol: number,
                                    what: string, names?: string[]): number {
  if (got.length !== ref.length) throw new Error(`${what}: ${got.length} outputs, reference ${ref.length}`);
  let worst = 0;
  ref.forEach((r, i) => {
    const err = maxErrorOverUnit(got[i], r);
    worst = Math.max(worst, err);
    if (!(err < tol)) {
      throw new Error(`${what}: ${names?.[i] ?? `output ${i}`}: error ${err.toExponential(2)} is not below ${tol}`);
    }
  });
  return worst;
}

export interface ReferenceCheck {
  /** max |got − ref| / max(1, max|ref|) per output must stay below this. */
  tol: number;
  /** An independent float64 reference of every output (checked on every backend, cpu too). */
  float64?: () => ArrayLike<number>[];
  /** Tolerance against the float64 reference (default: tol). */
  float64Tol?: number;
  /** Output names, for messages. */
  names?: string[];
}

/**
 * The values of fn() on the suite's backend, checked against the same fn() on cpu (on
 * backends other than cpu) and against the float64 reference when given; returns them.
 */
export async function expectMatchesReference(env: TestBackend, fn: () => tf.Tensor[],
                                             check: ReferenceCheck): Promise<Float32Array[]> {
  const got = await valuesOf(fn);
  if (env.backend !== 'cpu') {
    const ref = await onCpu(() => valuesOf(fn));
    expectBelowOverUnit(got, ref, check.tol, `${env.id} vs cpu`, check.names);
  }
  if (check.float64 != null) {
    expectBelowOverUnit(got, check.float64(), check.float64Tol ?? check.tol, `${env.id} vs float64`, check.names);
  }
  return got;
}

/**
 * Fused Fourier-KArAt kernels for the 'tensorflow' backend of @tensorflow/tfjs-node(-gpu).
 *
 * Route (zero copy): tfjs-node runs every op as a TensorFlow eager op through
 * `backend.binding.executeOp(name, attrs, inputIds, numOutputs)` (wrapped by the backend's
 * executeSingleOutput / executeMultipleOutputs), so the data never leaves TensorFlow. Our op
 * library libkarat_tf_ops.so registers the ops KaratFourierKArAt / KaratFourierKArAtGrad with CPU
 * and GPU kernels through TensorFlow's C API; the CUDA addon loads it with TF_LoadLibrary from
 * the libtensorflow that tfjs-node already mapped. Then the tfjs kernels FourierKArAt and
 * FourierKArAtGrad are registered for backend 'tensorflow' and simply execute those ops.
 *
 * Every step can fail for an ordinary reason (no tfjs-node, addon not built, ...): then nothing
 * is registered, the ops keep using the composite path, and the returned status says why.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import * as tf from '@tensorflow/tfjs-core';

import {FourierKArAt} from '../../core/kernel_names';
import {requireFromCwd} from '../../core/node_require';
import {loadCudaAddon} from '../addon';
import {fourierKArAtTensorFlowConfig} from './fourier_karat';
import {fourierKArAtGradTensorFlowConfig} from './fourier_karat_grad';
import {TF_BACKEND} from './util';

export const DEFAULT_TFJS_NODE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];
export const OP_LIBRARY_RELATIVE_PATH = 'kernels-cuda/build/libkarat_tf_ops.so';
/** The CPU-only build (`make -C kernels-cuda tfops-cpu`, g++ only) for @tensorflow/tfjs-node. */
export const CPU_OP_LIBRARY_RELATIVE_PATH = 'kernels-cuda/build/libkarat_tf_ops_cpu.so';
/** Its loader addon (TF_LoadLibrary only, no CUDA runtime). */
export const CPU_LOADER_ADDON_RELATIVE_PATH = 'kernels-cuda/build/karat_tf_load.node';
/**
 * Sonames under which tfjs-node may have mapped libtensorflow: its own download ships
 * libtensorflow.so.2; built from a tensorflow-cpu wheel (scripts/tfjs-node-from-wheel.sh) the
 * binding needs libtensorflow_cc.so.2.
 */
const LIBTENSORFLOW_SONAMES = ['libtensorflow.so.2', 'libtensorflow_cc.so.2'];

export interface TensorFlowKernelOptions {
  /** Packages to look for, in order (default: tfjs-node-gpu, then tfjs-node). */
  packages?: string[];
  /** Path of karat_cuda.node (default search: see addon.ts). */
  addonPath?: string;
  /** Path of libkarat_tf_ops.so (default: $KARAT_TF_OP_LIBRARY, then kernels-cuda/build/). */
  opLibraryPath?: string;
  /** Run a 1-element forward on the 'tensorflow' backend after loading to prove it works (default true). */
  probe?: boolean;
}

export interface TensorFlowKernelStatus {
  /** True when the fused kernels are registered for backend 'tensorflow'. */
  loaded: boolean;
  /** Why (not), for people. */
  reason: string;
  /** The step that decided: 'node' | 'package' | 'backend' | 'addon' | 'op-library' | 'load' | 'probe' | 'done'. */
  step: string;
  package?: string;
  addonPath?: string;
  opLibraryPath?: string;
  probe?: 'passed' | 'failed' | 'skipped';
  /** tfjs kernel names registered for 'tensorflow' by this call or an earlier one. */
  kernels: string[];
}

/** The tfjs KernelConfigs that run our TensorFlow ops (exported for inspection and tests). */
export const tensorFlowKernelConfigs: tf.KernelConfig[] = [fourierKArAtTensorFlowConfig, fourierKArAtGradTensorFlowConfig];

function registered(): string[] {
  return tensorFlowKernelConfigs.map((c) => c.kernelName).filter((n) => tf.getKernel(n, TF_BACKEND) != null);
}

/** `relative` in the working directory, then in an installed tfjs-karat package. */
function packagePaths(relative: string): string[] {
  const out = [path.resolve(relative)];
  try {
    out.push(path.join(path.dirname(requireFromCwd().resolve('tfjs-karat/package.json')), relative));
  } catch {
    // not installed as a package
  }
  return out;
}

function opLibraryCandidates(explicit: string | undefined, cpuOnly: boolean): string[] {
  const out: string[] = [];
  if (explicit) out.push(explicit);
  const env = process.env.KARAT_TF_OP_LIBRARY;
  if (env) out.push(env);
  // the CUDA build holds CPU kernels too, but needs the CUDA addon to be loaded
  if (!cpuOnly) out.push(...packagePaths(OP_LIBRARY_RELATIVE_PATH));
  out.push(...packagePaths(CPU_OP_LIBRARY_RELATIVE_PATH));
  return [...new Set(out)];
}

interface TensorFlowLibraryLoader {
  loadTensorFlowLibrary(libtensorflow: string, opLibrary: string): {ok: boolean, message: string};
}

/** karat_tf_load.node (CPU-only route), or why it is not there. */
function loadCpuLoaderAddon(): {addon?: TensorFlowLibraryLoader, path?: string, reason: string} {
  const found = packagePaths(CPU_LOADER_ADDON_RELATIVE_PATH).find((p) => fs.existsSync(p));
  if (found == null) return {reason: `${CPU_LOADER_ADDON_RELATIVE_PATH} not built (make -C kernels-cuda tfops-cpu)`};
  try {
    return {addon: requireFromCwd()(found) as TensorFlowLibraryLoader, path: found, reason: 'loaded'};
  } catch (e) {
    return {reason: `${found} failed to load: ${(e as Error).message}`};
  }
}

/** Runs FourierKArAt once on the 'tensorflow' backend: scores 0, A = 1, B = 2 -> ĥ = 1. */
function probe(): {ok: boolean, detail: string} {
  if (tf.getBackend() !== TF_BACKEND) return {ok: true, detail: `skipped (active backend is ${tf.getBackend()})`};
  try {
    const v = tf.tidy(() => {
      const scores = tf.zeros([1, 1, 1, 1]);
      const coeffs = tf.tensor5d([1, 2], [1, 2, 1, 1, 1]);
      return tf.engine().runKernel(FourierKArAt, {scores, coeffs}, {}) as tf.Tensor;
    });
    const got = v.dataSync()[0];
    v.dispose();
    return Math.abs(got - 1) < 1e-6 ? {ok: true, detail: 'passed'} : {ok: false, detail: `expected 1, got ${got}`};
  } catch (e) {
    return {ok: false, detail: (e instanceof Error ? e.message : String(e))};
  }
}

let last: TensorFlowKernelStatus | undefined;

/** The status of the last loadTensorFlowKernels() call (undefined before the first). */
export function tensorFlowKernelStatus(): TensorFlowKernelStatus | undefined {
  return last;
}

/**
 * Registers the fused kernels for backend 'tensorflow' if everything they need is present.
 * Never throws; safe to call repeatedly (a success is remembered).
 */
export function loadTensorFlowKernels(options: TensorFlowKernelOptions = {}): TensorFlowKernelStatus {
  if (last?.loaded) return last;
  last = attempt(options);
  return last;
}

function attempt(options: TensorFlowKernelOptions): TensorFlowKernelStatus {
  const fail = (step: string, reason: string, extra: Partial<TensorFlowKernelStatus> = {}): TensorFlowKernelStatus =>
      ({loaded: false, step, reason, kernels: registered(), ...extra});
  const req = requireFromCwd();

  const packages = options.packages ?? DEFAULT_TFJS_NODE_PACKAGES;
  let pkg: string | undefined;
  for (const name of packages) {
    try {
      req.resolve(`${name}/package.json`);
      pkg = name;
      break;
    } catch {
      // not installed
    }
  }
  if (pkg == null) {
    return fail('package', `${packages.join(' / ')} not installed: the 'tensorflow' backend is absent, ` +
                'the ops use the composite path (tfjs-node-gpu is an optional peer dependency)');
  }
  if (tf.findBackendFactory(TF_BACKEND) == null) {
    return fail('backend', `${pkg} is installed but not imported (no '${TF_BACKEND}' backend registered): ` +
                `import '${pkg}' before calling loadTensorFlowKernels()`, {package: pkg});
  }

  // The CUDA addon (tfjs-node-gpu route), else the CPU-only loader addon (tfjs-node route).
  const cuda = loadCudaAddon({path: options.addonPath});
  let loader: TensorFlowLibraryLoader;
  let addonPath: string | undefined;
  let cpuOnly = false;
  if (cuda.available && cuda.addon != null) {
    loader = cuda.addon;
    addonPath = cuda.path;
  } else {
    const cpu = loadCpuLoaderAddon();
    if (cpu.addon == null) return fail('addon', `${cuda.reason}; ${cpu.reason}`, {package: pkg});
    loader = cpu.addon;
    addonPath = cpu.path;
    cpuOnly = true;
  }
  const addon = {path: addonPath};

  const libs = opLibraryCandidates(options.opLibraryPath, cpuOnly);
  const lib = libs.find((p) => fs.existsSync(p));
  if (lib == null) {
    return fail('op-library', `TensorFlow op library not built (looked for ${libs.join(', ')}); ` +
                'build it with npm run build:cuda (CUDA) or npm run build:tensorflow (CPU)', {package: pkg, addonPath: addon.path});
  }

  // The soname of the libtensorflow tfjs-node loaded, wherever its package put it.
  let res = {ok: false, message: ''};
  for (const soname of LIBTENSORFLOW_SONAMES) {
    res = loader.loadTensorFlowLibrary(soname, lib);
    if (res.ok || !/is not loaded in this process/.test(res.message)) break;
  }
  if (!res.ok) {
    return fail('load', res.message, {package: pkg, addonPath: addon.path, opLibraryPath: lib});
  }
  const added: string[] = [];
  for (const config of tensorFlowKernelConfigs) {
    if (tf.getKernel(config.kernelName, TF_BACKEND) == null) {
      tf.registerKernel(config);
      added.push(config.kernelName);
    }
  }
  if (options.probe !== false) {
    const p = probe();
    if (!p.ok) {
      for (const name of added) tf.unregisterKernel(name, TF_BACKEND);
      return fail('probe', `op library loaded but a test run failed (${p.detail}); kernels unregistered`,
                  {package: pkg, addonPath: addon.path, opLibraryPath: lib, probe: 'failed'});
    }
    return {loaded: true, step: 'done', reason: `fused kernels registered for '${TF_BACKEND}' (${res.message}); probe ${p.detail}`,
            package: pkg, addonPath: addon.path, opLibraryPath: lib, probe: p.detail === 'passed' ? 'passed' : 'skipped',
            kernels: registered()};
  }
  return {loaded: true, step: 'done', reason: `fused kernels registered for '${TF_BACKEND}' (${res.message})`,
          package: pkg, addonPath: addon.path, opLibraryPath: lib, probe: 'skipped', kernels: registered()};
}

/**
 * Lazy loader for the Node-API addon `karat_cuda.node` (built only by `npm run build:cuda`).
 * Never throws: returns a status object that says whether the addon is usable and why not.
 *
 * Search order: options.path, $KARAT_CUDA_ADDON, <cwd>/kernels-cuda/build/karat_cuda.node,
 * and kernels-cuda/build/karat_cuda.node inside the installed tfjs-karat package
 * (options.searchDefaults = false: only options.path).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import {requireFromCwd} from '../core/node_require';

/** What the addon exports (see addon/karat_addon.c). */
export interface KaratCudaAddon {
  abiVersion(): number;
  deviceInfo(): {ok: boolean, count: number, name?: string, computeCapability?: string, error?: string};
  /** Host arrays in/out; dims = [B, h, N, r, G]. */
  fourierForward(scores: Float32Array, coeffs: Float32Array, dims: number[]): Float32Array;
  fourierBackward(dy: Float32Array, scores: Float32Array, coeffs: Float32Array, dims: number[]):
      [Float32Array, Float32Array];
  /** Loads a TensorFlow op library via TF_LoadLibrary of an already loaded libtensorflow. */
  loadTensorFlowLibrary(libtensorflow: string, opLibrary: string): {ok: boolean, message: string};
}

export interface CudaAddonStatus {
  available: boolean;
  /** Why it is (not) available, for people. */
  reason: string;
  /** Paths tried, in order. */
  tried: string[];
  path?: string;
  addon?: KaratCudaAddon;
}

/** ABI version the TypeScript side expects (KARAT_CUDA_ABI_VERSION in include/karat_cuda.h). */
export const EXPECTED_ABI_VERSION = 1;

export const ADDON_RELATIVE_PATH = 'kernels-cuda/build/karat_cuda.node';

/** Candidate locations of the addon, most specific first. */
export function addonCandidates(explicit?: string, searchDefaults = true): string[] {
  const out: string[] = [];
  if (explicit) out.push(explicit);
  const env = process.env.KARAT_CUDA_ADDON;
  if (env && searchDefaults) out.push(env);
  if (searchDefaults) {
    out.push(path.resolve(ADDON_RELATIVE_PATH));
    try {
      out.push(path.join(path.dirname(requireFromCwd().resolve('tfjs-karat/package.json')), ADDON_RELATIVE_PATH));
    } catch {
      // tfjs-karat is not installed as a package (e.g. running from the repository).
    }
  }
  return [...new Set(out)];
}

const cache = new Map<string, CudaAddonStatus>();

/** Loads (once per path) the CUDA addon; never throws. */
export function loadCudaAddon(options: {path?: string, searchDefaults?: boolean} = {}): CudaAddonStatus {
  const req = requireFromCwd();
  const tried = addonCandidates(options.path, options.searchDefaults ?? true);
  const key = tried.join('|');
  const hit = cache.get(key);
  if (hit) return hit;
  let status: CudaAddonStatus | undefined;
  for (const p of tried) {
    if (!fs.existsSync(p)) continue;
    try {
      const addon = req(p) as KaratCudaAddon;
      const abi = addon.abiVersion();
      if (abi !== EXPECTED_ABI_VERSION) {
        status = {available: false, tried, path: p,
                  reason: `addon at ${p} has ABI version ${abi}, expected ${EXPECTED_ABI_VERSION}: rebuild with npm run build:cuda`};
      } else {
        status = {available: true, tried, path: p, addon, reason: `loaded ${p}`};
      }
    } catch (e) {
      status = {available: false, tried, path: p, reason: `addon at ${p} failed to load: ${(e instanceof Error ? e.message : String(e))}`};
    }
    break;
  }
  status ??= {
    available: false, tried,
    reason: `CUDA addon not built (looked for ${tried.join(', ')}); build it with npm run build:cuda ` +
            '(needs nvcc, g++ and the Node headers)',
  };
  cache.set(key, status);
  return status;
}

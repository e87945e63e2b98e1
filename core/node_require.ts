/**
 * Loading optional packages and native addons from the Node-only code (tfjs-karat/node): a
 * `require` that resolves from the user's working directory (their node_modules) first and,
 * failing that, from where this package is installed.
 */
import {createRequire} from 'node:module';
import * as nodePath from 'node:path';

/** A `require` that resolves from the working directory. */
export function requireFromCwd(): NodeRequire {
  return createRequire(nodePath.join(process.cwd(), 'package.json'));
}

/** `require(name)` from the working directory, else from this package; throws when neither finds it. */
export function requireOptional<T>(name: string): T {
  try {
    return requireFromCwd()(name) as T;
  } catch (e) {
    // __filename exists in the CommonJS build and under tsx; the ESM build has only the first try.
    if (typeof __filename !== 'string') throw e;
    return createRequire(__filename)(name) as T;
  }
}

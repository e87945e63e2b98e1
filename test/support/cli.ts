/** Runs the `karat` CLI in-process (main(argv)), capturing what it prints. */
import {main} from '../../src/cli/main';

/** Exit code, standard output and standard error (console.error and console.warn), each line ending in '\n'. */
export async function runCliInProcess(args: string[]): Promise<{code: number, out: string, err: string}> {
  let out = '', err = '';
  const [log, error, warn] = [console.log, console.error, console.warn];
  console.log = (...a: unknown[]) => {
    out += a.join(' ') + '\n';
  };
  console.error = console.warn = (...a: unknown[]) => {
    err += a.join(' ') + '\n';
  };
  try {
    return {code: await main(args), out, err};
  } finally {
    [console.log, console.error, console.warn] = [log, error, warn];
  }
}

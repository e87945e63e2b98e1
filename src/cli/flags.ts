/**
 * Command-line flags for the `karat` command and the benchmark scripts: one parser, one
 * usage error type.
 */
import {kebab} from '../training/config';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Parses `--name value`, `--name=value`, `--flag`, `--no-flag` into a record (camelCase keys). */
export function parseFlags(argv: string[], booleans: Set<string>): {flags: Record<string, unknown>, positional: string[]} {
  // no prototype: '--constructor' or '--__proto__' is an own key like any other (and unknown)
  const flags: Record<string, unknown> = Object.create(null);
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    let key = a.slice(2), value: unknown;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    }
    let k = camel(key);
    if (value === undefined && k.startsWith('no') && booleans.has(k[2]?.toLowerCase() + k.slice(3))) {
      flags[k[2].toLowerCase() + k.slice(3)] = false;
      continue;
    }
    if (value === undefined) {
      const next = argv[i + 1];
      if (booleans.has(k)) {
        if (next === 'true' || next === 'false') {
          value = next;
          i++;
        } else {
          value = true;
        }
      } else if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw new UsageError(`flag --${key} needs a value`);
      } else {
        value = next;
        i++;
      }
    }
    if (k === 'h') k = 'help';
    flags[k] = value;
  }
  return {flags, positional};
}

/**
 * The flags of `karat <command>` (the arguments after the command's name). The commands take
 * flags only, so an argument that is not a flag is a usage error, and so is a flag outside
 * `known` (when given; 'help' is always known). With --help the flags come back unchecked, for
 * the command to print its help.
 */
export function commandFlags(command: string, argv: string[], booleans: Iterable<string>,
                             known?: Iterable<string>): Record<string, unknown> {
  const {flags, positional} = parseFlags(argv, new Set(booleans));
  if (flags.help) return flags;
  if (positional.length) throw new UsageError(`karat ${command}: unexpected argument '${positional[0]}' (flags start with --)`);
  if (known != null) {
    const allowed = new Set([...known, 'help']);
    for (const k of Object.keys(flags)) {
      if (!allowed.has(k)) throw new UsageError(`karat ${command}: unknown flag --${kebab(k)} (see karat ${command} --help)`);
    }
  }
  return flags;
}

/**
 * Command-line flags for the `karat` command and the benchmark scripts: one parser, one
 * usage error type.
 */

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

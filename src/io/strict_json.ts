/**
 * A strict JSON reader (RFC 8259) for untrusted text: a duplicate object key, which JSON.parse
 * silently resolves to the last value, is an error, as is nesting deeper than 16 levels;
 * objects have no prototype. The safetensors header and the CLI's --config file are read
 * with it.
 */

/** Raised by parseStrictJson (unless the caller names another error); the message is one line. */
export class StrictJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

/**
 * A strict JSON parser (RFC 8259) that rejects duplicate object keys, which JSON.parse
 * silently resolves to the last one. Depth is bounded (16 levels).
 */
class StrictJson {
  private i = 0;
  constructor(private readonly s: string, private readonly what: string, private readonly error: (message: string) => Error) {}

  parse(): unknown {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.i !== this.s.length) this.fail('unexpected text after the JSON value');
    return v;
  }

  private fail(what: string): never {
    throw this.error(`${this.what} is not valid JSON: ${what} at character ${this.i}`);
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.i++;
      else break;
    }
  }

  private value(depth: number): unknown {
    if (depth > 16) this.fail('nesting deeper than 16 levels');
    const c = this.s[this.i];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    return this.fail(c === undefined ? 'unexpected end' : `unexpected character ${JSON.stringify(c)}`);
  }

  private object(depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    const seen = new Set<string>();
    this.i++;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('expected a string key');
      const k = this.string();
      if (seen.has(k)) {
        throw this.error(`${this.what} has the key ${JSON.stringify(k)} more than once`);
      }
      seen.add(k);
      this.ws();
      if (this.s[this.i] !== ':') this.fail(`expected ':' after key ${JSON.stringify(k)}`);
      this.i++;
      this.ws();
      out[k] = this.value(depth + 1);
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return out;
      if (c !== ',') this.fail(`expected ',' or '}'`);
    }
  }

  private array(depth: number): unknown[] {
    const out: unknown[] = [];
    this.i++;
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') this.fail(`expected ',' or ']'`);
    }
  }

  private string(): string {
    // Find the closing quote (skipping escapes), then let JSON.parse decode the literal.
    const start = this.i;
    this.i++;
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x22) break;
      if (c === 0x5c) this.i++;
      else if (c < 0x20) this.fail('control character in a string');
      this.i++;
    }
    if (this.i >= s.length) this.fail('unterminated string');
    this.i++;
    try {
      return JSON.parse(s.slice(start, this.i)) as string;
    } catch {
      return this.fail('invalid string escape');
    }
  }

  private number(): number {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.s.slice(this.i, this.i + 400));
    if (m == null) this.fail('invalid number');
    this.i += m[0].length;
    return Number(m[0]);
  }
}

/**
 * Parses JSON strictly (RFC 8259): a duplicate object key, which JSON.parse silently resolves
 * to the last value, is an error, as is nesting deeper than 16 levels. Objects have no
 * prototype. `what` names the text in error messages; `error` makes the error thrown
 * (default a StrictJsonError).
 */
export function parseStrictJson(text: string, what: string,
                                error: (message: string) => Error = (m) => new StrictJsonError(m)): unknown {
  return new StrictJson(text, what, error).parse();
}

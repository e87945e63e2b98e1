/** Typed-array helpers shared by the file formats, the timm table and the analysis tools. */

/** The arrays `parts`, one after another, in one new array made by `Out` (Float32Array or Uint8Array). */
export function concatArrays<C extends Float32ArrayConstructor | Uint8ArrayConstructor>(
    Out: C, parts: ArrayLike<number>[]): InstanceType<C> {
  const out = new Out(parts.reduce((n, p) => n + p.length, 0)) as InstanceType<C>;
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Test helper: forging a checkpoint's header while its weights and checksums stay as they were. */
import * as fs from 'node:fs';

/** Rewrites a checkpoint file with `edit` applied to its header (data unchanged). */
export function editHeader(src: string, dst: string, edit: (h: Record<string, unknown>) => void): void {
  const b = fs.readFileSync(src);
  const hl = b.readUInt32LE(8);
  const h = JSON.parse(b.subarray(12, 12 + hl).toString('utf8'));
  const data = b.subarray(12 + hl + ((4 - ((12 + hl) % 4)) % 4));
  edit(h);
  const hb = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(hb.length);
  const pad = Buffer.alloc((4 - ((12 + hb.length) % 4)) % 4);
  fs.writeFileSync(dst, Buffer.concat([b.subarray(0, 8), len, hb, pad, data]));
}

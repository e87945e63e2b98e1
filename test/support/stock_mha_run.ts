/**
 * Runs tfjs-layers 4.22's own MultiHeadAttention (stock_mha_cases.ts, in a child process on the
 * cpu backend) on a batch of cases; used by the contract suite and by the tensorflow-backend
 * layer suite, which compares our layer on tensorflow with the stock layer on the same weights.
 */
import {strict as assert} from 'assert';
import {spawnSync} from 'child_process';
import * as path from 'path';

export type StockArr = {shape: number[], data: number[], bool?: boolean};
export type StockResult = {output?: StockArr, scores?: StockArr, shape?: unknown, error?: string};

/** Runs tfjs-layers' own MultiHeadAttention on each case (see stock_mha_cases.ts) in one child process. */
export function runStock(cases: unknown[]): StockResult[] {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'stock_mha_cases.ts')],
                      {input: JSON.stringify(cases), encoding: 'utf8', timeout: 120000, cwd: path.resolve(__dirname, '../..'),
                       maxBuffer: 64 << 20});
  assert.equal(r.status, 0, `stock reference failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

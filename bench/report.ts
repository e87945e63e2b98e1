/** Output of the op benchmarks in Node (bench/run.ts, bench/browser/run.ts): table, ratios, JSON file. */
import {writeFileSync} from 'node:fs';

import {BenchRecord, printTable} from './common';
import {opRatios} from './ops';

/** Prints the records and the composite/fused ratios; writes the records to `json` when it is a path. */
export function reportOpRecords(records: BenchRecord[], json: unknown, note = ''): void {
  printTable(records);
  const ratios = opRatios(records);
  if (ratios.length) {
    console.log(`composite / fused (higher = fused better${note}):`);
    console.table(ratios.map((r) => ({...r, speedup: r.speedup.toFixed(2) + 'x', memory_ratio: r.memory_ratio.toFixed(2) + 'x'})));
  }
  if (typeof json === 'string') {
    writeFileSync(json, JSON.stringify(records, null, 2));
    console.log(`wrote ${records.length} records to ${json}`);
  }
}

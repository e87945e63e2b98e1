/**
 * The run-curves SVG (src/training/plot.ts) uses the analysis SVG helpers: labels are escaped
 * for XML text and attributes (`"` included), and tick values are the shared nice ticks.
 */
import * as assert from 'node:assert/strict';

import {niceTicks} from '../src/analysis/svg';
import {plotRuns} from '../src/training/plot';
import type {EpochRecord} from '../src/training/trainer';

function history(n: number, offset: number): EpochRecord[] {
  return Array.from({length: n}, (_, i) => ({
    epoch: i + 1, step: 10 * (i + 1), lr: 1e-3, trainLoss: 2 - 0.3 * i + offset, trainAcc: 0.2 + 0.1 * i,
    testLoss: 2.1 - 0.3 * i + offset, testTop1: 0.25 + 0.1 * i, testTop5: 0.6 + 0.05 * i,
    epochSeconds: 1, imagesPerSec: 100, cpuSeconds: 1, best: i === n - 1,
  }) as EpochRecord);
}

describe('training: run curves SVG', () => {
  it('escapes run labels and title, quotes included', () => {
    const svg = plotRuns([{label: 'a<"b">&c', history: history(3, 0)}, {label: "d'e", history: history(3, 0.1)}],
                         'runs "x" & <y>');
    assert.ok(svg.includes('a&lt;&quot;b&quot;&gt;&amp;c train'), 'label escaped');
    assert.ok(svg.includes('runs &quot;x&quot; &amp; &lt;y&gt;'), 'title escaped');
    assert.ok(!svg.includes('"b"') && !svg.includes('<y>'), 'no raw markup from a label');
  });

  it('labels the epoch axis with the shared nice ticks', () => {
    const svg = plotRuns([{label: 'r', history: history(5, 0)}]);
    const ticks = niceTicks(1, 5, 4);
    assert.deepEqual(ticks, [1, 2, 3, 4, 5]);
    for (const t of ticks) assert.match(svg, new RegExp(`>${t}</text>`));
  });
});

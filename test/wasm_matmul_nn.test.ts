/**
 * The trainer's wasm BatchMatMul (kernels-wasm/matmul_nn.ts): transposed batch-1 products
 * through XNNPACK. Checked against a float64 reference for every transpose combination, against
 * the stock kernel on the gradients of a Dense stack, for leaks, and for being opt-in (importing
 * the package leaves the stock kernel registered; restoring puts it back).
 */
import * as assert from 'node:assert/strict';

import * as tf from '@tensorflow/tfjs-core';
import '../src/index';
import {enableWasmMatMulNN, wasmMatMulNNActive} from '../kernels-wasm/matmul_nn';
import {describeWithBackends} from './support/backend_suites';
import {WASM} from './support/node_backends';
import {randomArray} from './support/reference';

/** C = op(A)·op(B) in float64; A, B row-major as stored. */
function refMatMul(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], ta: boolean, tb: boolean): Float64Array {
  const [ar, ac] = aShape.slice(-2), [br, bc] = bShape.slice(-2);
  const M = ta ? ac : ar, K = ta ? ar : ac, N = tb ? br : bc;
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[ta ? k * ac + i : i * ac + k] * b[tb ? j * bc + k : k * bc + j];
      out[i * N + j] = s;
    }
  }
  return out;
}

describeWithBackends('wasm BatchMatMul through XNNPACK for transposed products (opt-in)', {backends: [WASM.id]}, function() {
  this.timeout(60000);

  it('is not active on import, and restore puts the stock kernel back', () => {
    const stock = tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc;
    assert.equal(wasmMatMulNNActive(), false);
    const restore = enableWasmMatMulNN();
    assert.equal(wasmMatMulNNActive(), true);
    assert.notEqual(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc, stock);
    const nested = enableWasmMatMulNN();
    nested();
    assert.equal(wasmMatMulNNActive(), true, 'a nested enable does not restore');
    restore();
    assert.equal(wasmMatMulNNActive(), false);
    assert.equal(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc, stock);
  });

  const cases: Array<{a: number[], b: number[], ta: boolean, tb: boolean}> = [
    {a: [37, 13], b: [13, 29], ta: false, tb: false},
    {a: [37, 13], b: [29, 13], ta: false, tb: true},
    {a: [13, 37], b: [13, 29], ta: true, tb: false},
    {a: [13, 37], b: [29, 13], ta: true, tb: true},
    {a: [1, 61, 8], b: [1, 61, 24], ta: true, tb: false},
    {a: [1, 61, 24], b: [1, 17, 24], ta: false, tb: true},
    {a: [3, 5, 7], b: [3, 6, 7], ta: false, tb: true},
    {a: [2, 3, 6, 4], b: [2, 3, 4, 7], ta: false, tb: false},
    {a: [2, 3, 9, 5], b: [2, 3, 9, 6], ta: true, tb: false},
    {a: [2, 3, 5, 9], b: [2, 3, 6, 5], ta: true, tb: true},
    {a: [1, 4, 9, 5], b: [2, 4, 9, 6], ta: true, tb: false},   // batch broadcast (attention's projection)
    {a: [2, 4, 7, 5], b: [1, 4, 6, 5], ta: false, tb: true},
  ];
  for (const c of cases) {
    it(`a ${c.a} b ${c.b} transposeA ${c.ta} transposeB ${c.tb}: equals float64 to 1e-5 and leaks nothing`, async () => {
      const restore = enableWasmMatMulNN();
      try {
        const an = c.a.reduce((x, y) => x * y), bn = c.b.reduce((x, y) => x * y);
        const a = randomArray(an, 11), b = randomArray(bn, 12);
        const at = tf.tensor(a, c.a), bt = tf.tensor(b, c.b);
        const before = tf.memory().numTensors;
        const out = tf.matMul(at, bt, c.ta, c.tb);
        assert.equal(tf.memory().numTensors, before + 1);
        const got = await out.data();
        const outer = tf.broadcast_util.assertAndGetBroadcastShape(c.a.slice(0, -2), c.b.slice(0, -2));
        const batch = outer.reduce((x, y) => x * y, 1);
        const sa = c.a.slice(-2).reduce((x, y) => x * y), sb = c.b.slice(-2).reduce((x, y) => x * y);
        // index of the a / b matrix for output batch i (numpy broadcasting over the outer axes)
        const source = (shape: number[], i: number) => {
          const dims = shape.slice(0, -2);
          let idx = 0, rest = i;
          const coords = outer.map((_, ax) => 0);
          for (let ax = outer.length - 1; ax >= 0; ax--) {
            coords[ax] = rest % outer[ax];
            rest = Math.floor(rest / outer[ax]);
          }
          const off = outer.length - dims.length;
          for (let ax = 0; ax < dims.length; ax++) idx = idx * dims[ax] + (dims[ax] === 1 ? 0 : coords[ax + off]);
          return idx;
        };
        let o = 0, worst = 0;
        for (let i = 0; i < batch; i++) {
          const ia = source(c.a, i), ib = source(c.b, i);
          const ref = refMatMul(a.subarray(ia * sa, (ia + 1) * sa), c.a, b.subarray(ib * sb, (ib + 1) * sb), c.b, c.ta, c.tb);
          for (let j = 0; j < ref.length; j++, o++) worst = Math.max(worst, Math.abs(got[o] - ref[j]) / (1 + Math.abs(ref[j])));
        }
        assert.equal(o, got.length);
        assert.ok(worst < 1e-5, `max error ${worst}`);
        tf.dispose([at, bt, out]);
      } finally {
        restore();
      }
    });
  }

  it('gives the stock kernel\'s gradients of a Dense stack (float32 rounding only)', async () => {
    const x = tf.tensor2d(randomArray(40 * 16, 1), [40, 16]);
    const w1 = tf.variable(tf.tensor2d(randomArray(16 * 24, 2), [16, 24]));
    const w2 = tf.variable(tf.tensor2d(randomArray(24 * 8, 3), [24, 8]));
    const f = () => tf.sum(tf.square(tf.matMul(tf.tanh(tf.matMul(x, w1)), w2))) as tf.Scalar;
    const stock = tf.variableGrads(f, [w1, w2]);
    const restore = enableWasmMatMulNN();
    const fast = tf.variableGrads(f, [w1, w2]);
    restore();
    for (const v of [w1, w2]) {
      const s = await stock.grads[v.name].data(), g = await fast.grads[v.name].data();
      let worst = 0;
      for (let i = 0; i < s.length; i++) worst = Math.max(worst, Math.abs(s[i] - g[i]) / (1 + Math.abs(s[i])));
      assert.ok(worst < 1e-4, `${v.name}: max difference ${worst}`);
    }
    tf.dispose([x, w1, w2, stock.value, fast.value, ...Object.values(stock.grads), ...Object.values(fast.grads)]);
  });
});

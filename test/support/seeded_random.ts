/**
 * Mocha root hooks (loaded with `--require` by .mocharc.json and scripts/test.mjs): the test
 * process never draws from the unseeded Math.random. Each test runs with Math.random seeded from
 * its full title, and the hooks of the suite that follows from the title of the test before, so
 * tfjs' unseeded random ops — and so tfjs-layers' initialisers in the models that tests and their
 * `before` hooks build — draw the same numbers in every run. A tolerance a test meets here it
 * meets in CI, and a failure reproduces. Tests that need a random source of their own still pass
 * one in (withMathRandom, a seed option).
 */
import {mulberry32} from '../../src/data/rng';
import {crc32Portable} from '../../src/io/crc32';

/** A 32-bit seed from the text: the CRC-32 of its UTF-8 bytes. */
const seedOf = (text: string): number => crc32Portable(new TextEncoder().encode(text));

Math.random = mulberry32(seedOf('tfjs-karat tests'));

export const mochaHooks = {
  beforeEach(this: Mocha.Context) {
    Math.random = mulberry32(seedOf(this.currentTest?.fullTitle() ?? ''));
  },
  afterEach(this: Mocha.Context) {
    Math.random = mulberry32(seedOf(`after ${this.currentTest?.fullTitle() ?? ''}`));
  },
};

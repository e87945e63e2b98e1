/**
 * Model and checkpoint files are untrusted input: weight paths stay inside the model folder,
 * reads are bounded by what the manifest declares, absurd model specs are refused before
 * anything is built, and the CLI rejects prototype-member flags and config keys.
 * cpu backend, tiny models.
 */
import '@tensorflow/tfjs-backend-cpu';

import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {strict as assert} from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as karat from '../src/index';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'karat-security-'));
after(() => fs.rmSync(tmp, {recursive: true, force: true}));

const SMALL = {dim: 8, depth: 1, heads: 2, imageSize: 8, patchSize: 4, numClasses: 3, mlpRatio: 1};

/** Saves a tiny softmax ViT to `<tmp>/<name>/` and returns the folder and its parsed model.json. */
async function savedModel(name: string): Promise<{dir: string, json: tf.io.ModelJSON}> {
  const dir = path.join(tmp, name);
  const m = karat.models.vit(SMALL);
  await m.save(karat.io.fileSystem(dir));
  m.dispose();
  return {dir, json: JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'))};
}

function rewrite(dir: string, json: tf.io.ModelJSON, edit: (j: tf.io.ModelJSON) => void): void {
  const j = JSON.parse(JSON.stringify(json)) as tf.io.ModelJSON;
  edit(j);
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(j));
}

describe('security: the file:// handler reads only what the model folder declares', function() {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('a manifest path leaving the model folder (../, absolute-looking, symlink) is refused with the path named', async () => {
    const {dir, json} = await savedModel('traversal/models/m');
    const secretDir = path.join(tmp, 'traversal', 'secret');
    fs.mkdirSync(secretDir, {recursive: true});
    // a file of exactly the declared size, so only the confinement can refuse it
    fs.copyFileSync(path.join(dir, 'weights.bin'), path.join(secretDir, 'secret.bin'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['../../secret/secret.bin']);
    for (const load of [
      () => tfl.loadLayersModel(`file://${path.join(dir, 'model.json')}`),
      () => karat.io.fileSystem(dir).load(),
      () => karat.swapAttention(`file://${path.join(dir, 'model.json')}`, 'softmax'),
    ]) {
      await assert.rejects(load(), /weight file '\.\.\/\.\.\/secret\/secret\.bin' resolves to .*secret\.bin', outside the model folder/);
    }
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['../../../../../../../../etc/passwd']);
    await assert.rejects(karat.io.fileSystem(dir).load(), /outside the model folder/);
    fs.symlinkSync(path.join(secretDir, 'secret.bin'), path.join(dir, 'link.bin'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['link.bin']);
    await assert.rejects(karat.io.fileSystem(dir).load(), /weight file 'link\.bin' resolves to .*outside the model folder/);
    // a symbolic link that stays inside the folder is fine
    fs.symlinkSync(path.join(dir, 'weights.bin'), path.join(dir, 'inside.bin'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['inside.bin']);
    const m = await tfl.loadLayersModel(karat.io.fileSystem(dir));
    assert.equal(m.layers.length > 0, true);
    m.dispose();
  });

  it('a device, a file of another size and an oversized declaration are refused before reading', async () => {
    const {dir, json} = await savedModel('sizes');
    if (fs.existsSync('/dev/zero')) {
      fs.symlinkSync('/dev/zero', path.join(dir, 'zero.bin'));
      // /dev/zero is outside the folder; inside it, a FIFO is the endless-read case
      rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['zero.bin']);
      await assert.rejects(karat.io.fileSystem(dir).load(), /outside the model folder/);
    }
    const declared = fs.statSync(path.join(dir, 'weights.bin')).size;
    const big = path.join(dir, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(declared + 4));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['big.bin']);
    await assert.rejects(karat.io.fileSystem(dir).load(),
        new RegExp(`weight files 'big\\.bin' hold ${declared + 4} bytes, the manifest declares ${declared} bytes`));
    fs.mkdirSync(path.join(dir, 'sub'));
    rewrite(dir, json, (j) => j.weightsManifest[0].paths = ['sub']);
    await assert.rejects(karat.io.fileSystem(dir).load(), /weight file 'sub' is not a regular file/);
    rewrite(dir, json, (j) => j.weightsManifest[0].weights[0].shape = [1e6, 1e6]);
    await assert.rejects(karat.io.fileSystem(dir).load(), /the weights declare more than 2147483648 bytes \(limit\)/);
    rewrite(dir, json, () => undefined);
    await assert.rejects(karat.io.fileSystem(dir, {maxWeightBytes: 100}).load(), /more than 100 bytes \(limit\)/);
    rewrite(dir, json, (j) => (j.weightsManifest[0].weights[0] as {dtype: string}).dtype = 'string');
    await assert.rejects(karat.io.fileSystem(dir).load(), /dtype "string", which this loader does not read/);
    assert.throws(() => karat.io.fileSystem(dir, {maxWeightBytes: -1}), /options\.maxWeightBytes' must be a non-negative integer/);
  });
});

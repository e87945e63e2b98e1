/**
 * IDX readers for MNIST and Fashion-MNIST (`*-images-idx3-ubyte[.gz]`,
 * `*-labels-idx1-ubyte[.gz]`), gzip detected by its magic bytes.
 */

import {DataError, ImageDataset, inMemoryDataset} from './dataset';
import * as nodeFs from 'node:fs';
import * as nodePath from 'node:path';
import * as nodeZlib from 'node:zlib';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Parses an IDX file of unsigned bytes; returns its dimensions and data. */
export function parseIdx(raw: Uint8Array, source: string): {dims: number[], data: Uint8Array} {
  let buf = raw;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = nodeZlib.gunzipSync(buf);
    } catch (e) {
      throw new DataError(`${source}: corrupt or truncated gzip data (${(e as Error).message})`);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    const got = Buffer.from(buf.subarray(0, 4)).toString('hex');
    throw new DataError(`${source}: wrong magic number 0x${got}, expected 0x000008NN (IDX unsigned-byte file)`);
  }
  if (buf[2] !== 0x08) {
    throw new DataError(`${source}: IDX data type 0x${buf[2].toString(16)} is not supported, expected 0x08 (unsigned byte)`);
  }
  const nd = buf[3];
  if (nd < 1 || nd > 4) throw new DataError(`${source}: IDX file declares ${nd} dimensions, expected 1 to 4`);
  if (buf.length < 4 + 4 * nd) throw new DataError(`${source}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * nd;
  if (buf.length - start !== count) {
    throw new DataError(
        `${source}: ${buf.length - start < count ? 'truncated' : 'oversized'} IDX data — header [${dims.join(', ')}] needs ` +
        `${count} bytes, file has ${buf.length - start}`);
  }
  return {dims, data: buf.subarray(start)};
}

/** Builds a dataset from an IDX image file (N x H x W) and an IDX label file (N). */
export function idxDataset(images: Uint8Array, labels: Uint8Array, name: string, classNames: string[],
                           imgSource = `${name} images`, lblSource = `${name} labels`): ImageDataset {
  const im = parseIdx(images, imgSource);
  const lb = parseIdx(labels, lblSource);
  if (im.dims.length !== 3) throw new DataError(`${imgSource}: expected 3 dimensions [N, H, W], got [${im.dims.join(', ')}]`);
  if (lb.dims.length !== 1) throw new DataError(`${lblSource}: expected 1 dimension [N], got [${lb.dims.join(', ')}]`);
  if (im.dims[0] !== lb.dims[0]) {
    throw new DataError(`${name}: ${im.dims[0]} images but ${lb.dims[0]} labels (${imgSource} vs ${lblSource})`);
  }
  return inMemoryDataset({
    name, height: im.dims[1], width: im.dims[2], channels: 1, classNames,
    images: new Uint8Array(im.data), labels: Int32Array.from(lb.data),
  });
}

/** Loads (Fashion-)MNIST `split` from a directory holding the four standard files (.gz or not). */
export function loadIdxDir(dir: string, split: 'train' | 'test', name: string, classNames: string[]): ImageDataset {
  const prefix = split === 'train' ? 'train' : 't10k';
  const find = (base: string) => {
    for (const f of [`${base}.gz`, base]) if (nodeFs.existsSync(nodePath.join(dir, f))) return nodePath.join(dir, f);
    throw new DataError(`${name}: missing ${nodePath.join(dir, base)}[.gz]`);
  };
  const ip = find(`${prefix}-images-idx3-ubyte`), lp = find(`${prefix}-labels-idx1-ubyte`);
  return idxDataset(nodeFs.readFileSync(ip), nodeFs.readFileSync(lp), `${name}/${split}`, classNames, ip, lp);
}

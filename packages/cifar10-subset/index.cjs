// tfjs-karat-cifar10-subset: the absolute path of the CIFAR-10 subset file (cifar10-subset.kds),
// which `karat train --dataset cifar10-subset` and tfjs-karat/node's data.loadSubset read.
'use strict';
const {join} = require('node:path');

/** Absolute path of cifar10-subset.kds. */
exports.path = join(__dirname, 'cifar10-subset.kds');

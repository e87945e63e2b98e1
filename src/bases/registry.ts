/** Name -> basis. Add a new basis here (or with registerBasis from user code). */
import {bsplineBasis} from './bspline';
import {fourierBasis} from './fourier';
import {rationalBasis} from './rational';
import {Basis} from './types';
import {waveletBasis} from './wavelets';

const registry = new Map<string, Basis>([
  ['fourier', fourierBasis],
  ['rational', rationalBasis],
  ['mexican_hat', waveletBasis('mexican_hat')],
  ['morlet', waveletBasis('morlet')],
  ['dog', waveletBasis('dog')],
  ['meyer', waveletBasis('meyer')],
  ['shannon', waveletBasis('shannon')],
  ['bspline', bsplineBasis],
]);

export function getBasis(name: string): Basis {
  const b = registry.get(name);
  if (b == null) {
    throw new Error(`Unknown KArAt basis '${name}'; registered: ${[...registry.keys()].join(', ')}`);
  }
  return b;
}

/** Registers (or replaces) a basis under `basis.name`. */
export function registerBasis(basis: Basis): void {
  registry.set(basis.name, basis);
}

export function registeredBases(): string[] {
  return [...registry.keys()];
}

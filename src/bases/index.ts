export * from './types';
export {getBasis, registerBasis, registeredBases} from './registry';
export {operatorDims, operatorParamSpecs, operatorParamCount, operatorHidden, operatorActivation, operatorAttention} from './operator';
export {splineBasisValues, splineKnots} from './bspline';

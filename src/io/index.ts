/** Model IO that works everywhere (karat.io); tfjs-karat/node adds the file system handler. */
export {MAX_WEIGHT_BYTES} from './validate_weights';
export {loadFromMemory, saveToMemory} from './memory';
export {halfToFloat, parseSafetensors, readSafetensors, SAFETENSORS_DTYPE_BYTES, SAFETENSORS_MAX_HEADER_BYTES, SAFETENSORS_READ_DTYPES, SafetensorsError, writeSafetensors} from './safetensors';
export type {SafetensorsEntry, SafetensorsFile, SafetensorsFloatDtype, SafetensorsReadOptions, SafetensorsTensor} from './safetensors';
export {permuteAxes, TIMM_VIT_ARCHS, TORCH_VIT_FORMAT, torchViTTensorShapes, vitConfigFromSafetensors, vitConfigOfModel, vitFromSafetensors, vitFromSafetensorsWithReport, vitToSafetensors, vitToTorchTensors} from './torch_vit';
export type {TorchTensorSpec, TorchViTConfig, VitConversionReport, VitFromSafetensorsOptions} from './torch_vit';

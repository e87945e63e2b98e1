/** Model IO that works everywhere (karat.io); tfjs-karat/node adds the file system handler. */
export {MAX_WEIGHT_BYTES} from './validate_weights';
export {loadFromMemory, saveToMemory} from './memory';
export {halfToFloat, parseSafetensors, readSafetensors, SAFETENSORS_DTYPE_BYTES, SAFETENSORS_MAX_HEADER_BYTES, SAFETENSORS_READ_DTYPES, SafetensorsError, writeSafetensors} from './safetensors';
export type {SafetensorsEntry, SafetensorsFile, SafetensorsFloatDtype, SafetensorsReadOptions, SafetensorsTensor} from './safetensors';
export {permuteAxes, torchViTTensorShapes} from './timm_table';
export type {TorchTensorSpec} from './timm_table';
export {TIMM_VIT_ARCHS, TORCH_VIT_FORMAT, vitConfigFromSafetensors} from './torch_vit_config';
export type {TorchViTConfig, VitFromSafetensorsOptions} from './torch_vit_config';
export {vitConfigOfModel, vitFromSafetensors, vitFromSafetensorsWithReport, vitToSafetensors, vitToTorchTensors} from './torch_vit';
export type {VitConversionReport} from './torch_vit';

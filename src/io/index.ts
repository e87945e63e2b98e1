export {fileSystem, fileSystemRouter, NodeFileSystem, FILE_SCHEME, MODEL_JSON, WEIGHTS_BIN} from './file_system';
export {loadFromMemory, saveToMemory} from './memory';
export {halfToFloat, parseSafetensors, readSafetensors, SAFETENSORS_DTYPE_BYTES, SAFETENSORS_MAX_HEADER_BYTES, SAFETENSORS_READ_DTYPES, SafetensorsError, writeSafetensors} from './safetensors';
export type {SafetensorsEntry, SafetensorsFile, SafetensorsFloatDtype, SafetensorsReadOptions, SafetensorsTensor} from './safetensors';
export {permuteAxes, TIMM_VIT_ARCHS, TORCH_VIT_FORMAT, torchViTTensorShapes, vitConfigFromSafetensors, vitConfigOfModel, vitFromSafetensors, vitFromSafetensorsWithReport, vitToSafetensors, vitToTorchTensors} from './torch_vit';
export type {TorchViTConfig, VitConversionReport, VitFromSafetensorsOptions} from './torch_vit';

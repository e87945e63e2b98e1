export {fileSystem, fileSystemRouter, NodeFileSystem, FILE_SCHEME, MODEL_JSON, WEIGHTS_BIN, MAX_MODEL_JSON_BYTES} from './file_system';
export type {FileSystemOptions} from './file_system';
export {MAX_WEIGHT_BYTES} from './validate_weights';
export {loadFromMemory, saveToMemory} from './memory';

export {fileSystem, fileSystemRouter, NodeFileSystem, FILE_SCHEME, MODEL_JSON, WEIGHTS_BIN} from './file_system';
export {loadFromMemory, saveToMemory} from './memory';

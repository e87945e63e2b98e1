/** Model IO in Node (karat.io from tfjs-karat/node): the in-memory handlers and the file system one. */
export * from './index';
export {fileSystem, fileSystemRouter, NodeFileSystem, FILE_SCHEME, MODEL_JSON, WEIGHTS_BIN} from './file_system';

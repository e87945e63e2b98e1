/** Model IO in Node (karat.io from tfjs-karat/node): the in-memory handlers and the file system one. */
export * from './index';
export {fileSystem, fileSystemRouter, NodeFileSystem, FILE_SCHEME, MODEL_JSON, WEIGHTS_BIN, MAX_MODEL_JSON_BYTES} from './file_system';
export type {FileSystemOptions} from './file_system';

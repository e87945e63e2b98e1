/** Model IO that works everywhere (karat.io); tfjs-karat/node adds the file system handler. */
export {loadFromMemory, saveToMemory} from './memory';

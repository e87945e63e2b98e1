/** Process entry of the `karat` command (bin/karat.cjs runs this file, or its build). */
import '../node';

import {main} from './main';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});

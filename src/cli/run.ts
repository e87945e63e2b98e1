/** Process entry of the `karat` command (bin/karat.cjs runs this file, or its build). */
import '../node';

import {runCli} from './main';

// Started by bin/karat.cjs with an IPC channel: exit when the launcher goes away (the channel
// closes even when the launcher is killed with SIGKILL). The channel itself must not keep
// this process alive.
if (typeof process.send === 'function' && process.channel != null) {
  process.channel.unref();
  process.once('disconnect', () => {
    process.stderr.write('karat: the launching process exited; stopping\n');
    process.exit(129);
  });
}

runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});

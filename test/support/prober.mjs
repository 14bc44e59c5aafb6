// @ts-check
/**
 * Packet probes for the exposure measurements (test/support/exposure.ts), run as their own
 * process inside a network namespace (`nsenter --net=… node prober.mjs …`). Plain JavaScript so
 * both the tests and the built benchmark can start it as it is. Each prints one JSON line per
 * event on stdout, stamped with the wall clock (Date.now()), which the caller compares with the
 * time `docker run` returned:
 *
 *   prober.mjs connect HOST PORT EVERY_MS TIMEOUT_MS
 *       a new TCP connection to HOST:PORT every EVERY_MS, each given TIMEOUT_MS, until its stdin
 *       closes; prints {"at": start, "result": "ok" | "refused" | "timeout" | "error"} for each.
 *       A dropped SYN is a timeout; a port nothing listens on (yet) answers with a reset: refused.
 *   prober.mjs listen PORT [PORT…]
 *       accepts TCP connections on each port until SIGTERM; prints {"at", "port"} per connection
 *       and closes it.
 *
 * Both print {"ready": true} once they run.
 */
import { connect, createServer } from 'node:net';

/** @param {Record<string, unknown>} doc */
function print(doc) {
  process.stdout.write(`${JSON.stringify(doc)}\n`);
}

/**
 * @param {string} host
 * @param {number} port
 * @param {number} timeoutMs
 * @returns {Promise<string>}
 */
function attempt(host, port, timeoutMs) {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    /** @param {string} result */
    const done = (result) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => {
      done('timeout');
    });
    socket.once('connect', () => {
      done('ok');
    });
    socket.once('error', (/** @type {NodeJS.ErrnoException} */ error) => {
      done(error.code === 'ECONNREFUSED' ? 'refused' : 'error');
    });
  });
}

/** @param {readonly string[]} args */
async function probeConnect(args) {
  const [host = '', port, every, timeout] = args;
  const [portN, everyMs, timeoutMs] = [port, every, timeout].map(Number);
  if (host === '' || [portN, everyMs, timeoutMs].some((n) => !Number.isFinite(n)))
    throw new Error('usage: prober.mjs connect HOST PORT EVERY_MS TIMEOUT_MS');
  /** @type {Promise<void>[]} */
  const pending = [];
  const stdin = { open: true };
  process.stdin
    .once('end', () => {
      stdin.open = false;
    })
    .resume();
  print({ ready: true });
  while (stdin.open) {
    const at = Date.now();
    pending.push(
      attempt(host, Number(portN), Number(timeoutMs)).then((result) => {
        print({ at, result });
      }),
    );
    await new Promise((r) => setTimeout(r, everyMs));
  }
  await Promise.all(pending);
}

/** @param {readonly string[]} args */
function listen(args) {
  for (const port of args.map(Number)) {
    createServer((socket) => {
      print({ at: Date.now(), port });
      socket.destroy();
    }).listen(port);
  }
  print({ ready: true });
  process.once('SIGTERM', () => process.exit(0));
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'connect') await probeConnect(rest);
else if (mode === 'listen') listen(rest);
else throw new Error('usage: prober.mjs connect … | listen PORT…');

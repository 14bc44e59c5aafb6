/**
 * The exposure benchmark's packet probes, run as their own process inside a network namespace
 * (`nsenter --net=… node prober.js …`). Each prints one JSON line per event on stdout, stamped
 * with the wall clock (Date.now()), which the benchmark compares with the time `docker run`
 * returned:
 *
 *   prober.js connect HOST PORT EVERY_MS TIMEOUT_MS
 *       a new TCP connection to HOST:PORT every EVERY_MS, each given TIMEOUT_MS, until its stdin
 *       closes; prints {"at": start, "result": "ok" | "refused" | "timeout" | "error"} for each.
 *       A dropped SYN is a timeout; a port nothing listens on (yet) answers with a reset: refused.
 *   prober.js listen PORT [PORT…]
 *       accepts TCP connections on each port until SIGTERM; prints {"at", "port", "from"} per
 *       connection and closes it.
 *
 * Both print {"ready": true} once they run.
 */
import { connect, createServer, type Socket } from 'node:net';

type Result = 'ok' | 'refused' | 'timeout' | 'error';

function print(doc: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(doc)}\n`);
}

function attempt(host: string, port: number, timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host, port });
    const done = (result: Result): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => {
      done('timeout');
    });
    socket.once('connect', () => {
      done('ok');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      done(error.code === 'ECONNREFUSED' ? 'refused' : 'error');
    });
  });
}

async function probeConnect(args: readonly string[]): Promise<void> {
  const [host = '', port, every, timeout] = args;
  const [portN, everyMs, timeoutMs] = [port, every, timeout].map(Number);
  if (host === '' || [portN, everyMs, timeoutMs].some((n) => !Number.isFinite(n)))
    throw new Error('usage: prober.js connect HOST PORT EVERY_MS TIMEOUT_MS');
  const pending: Promise<void>[] = [];
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
      attempt(host, portN ?? 0, timeoutMs ?? 0).then((result) => {
        print({ at, result });
      }),
    );
    await new Promise((r) => setTimeout(r, everyMs));
  }
  await Promise.all(pending);
}

function listen(args: readonly string[]): void {
  for (const port of args.map(Number)) {
    createServer((socket) => {
      print({ at: Date.now(), port, from: socket.remoteAddress });
      socket.destroy();
    }).listen(port);
  }
  print({ ready: true });
  process.once('SIGTERM', () => process.exit(0));
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'connect') await probeConnect(rest);
else if (mode === 'listen') listen(rest);
else throw new Error('usage: prober.js connect … | listen PORT…');

/**
 * One apply at a time per firewall: cron, a person and CI may start moat at the same moment.
 * The lock is a unix socket bound in Linux's abstract namespace: a second bind of the same name
 * fails (EADDRINUSE), and the kernel frees the name the instant the last process holding the
 * socket ends, however it ends (SIGKILL, the OOM killer), so there is no staleness to guess.
 * Abstract names belong to a network namespace, the same scope as the firewall the lock guards.
 *
 * The programs that write the firewall inherit the socket (heldLockFds), so a run killed
 * while its iptables-restore is still writing holds the lock until that program ends too.
 * A run that finds the lock busy connects to it: a live moat holder answers who it is and keeps
 * the connection open until it lets go, so waiting runs go on the instant it does.
 */
import { createHash } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { ExitCode, MoatError } from '../core/errors.js';

export const DEFAULT_LOCK_PATH = '/run/moat.lock';
/**
 * How long a run waits, even with `--lock-timeout 0`, for a holder that does not say who it is
 * to let go: programs a killed run started, still finishing (they end in well under a second).
 */
const SILENT_GRACE_MS = 10_000;
/** A holder that let go between our bind and our connect: try again at once, a few times. */
const VANISHED_RETRIES = 5;
const VANISHED_PAUSE_MS = 50;
/** sockaddr_un.sun_path on Linux. */
const SUN_PATH_BYTES = 108;

export class LockBusyError extends MoatError {
  constructor(message: string) {
    super(message, { code: 'lock-busy', exitCode: ExitCode.lockBusy });
  }
}

/** What the holder answers to anyone who connects. */
interface Holder {
  readonly pid: number;
  readonly command: string;
  readonly since: string;
}

/** The locks this process holds, with the connections of the runs waiting for each. */
const held = new Map<Server, Set<Socket>>();

/**
 * File descriptors of the locks this process holds, for the programs that write the firewall
 * to inherit: the lock then lasts until moat and those programs have all ended. Uses the
 * listening handle's fd, which node does not document; without one, nothing is inherited.
 */
export function heldLockFds(): number[] {
  return [...held.keys()].flatMap((server) => {
    const fd = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? [fd] : [];
  });
}

/**
 * The abstract socket name for a `--lock-file` path: `@moat-lock:<absolute path>` (a sha256 of
 * the path when that is too long), padded with spaces to the whole of sun_path. libuv 1.46
 * (Node 20) binds an abstract name padded with NULs to 108 bytes, later libuv binds exactly
 * the bytes given; a name that fills sun_path is the same address for both, so runs under
 * different Node versions still exclude each other.
 */
export function lockSocketName(lockFile: string): string {
  const path = resolve(lockFile);
  let name = `\0moat-lock:${path}`;
  if (Buffer.byteLength(name) > SUN_PATH_BYTES) {
    name = `\0moat-lock:sha256:${createHash('sha256').update(path).digest('hex')}`;
  }
  return name + ' '.repeat(SUN_PATH_BYTES - Buffer.byteLength(name));
}

/** Binds the name; undefined when another process holds it. */
function bind(name: string, command: string): Promise<Server | undefined> {
  return new Promise((done, fail) => {
    const holder: Holder = { pid: process.pid, command, since: new Date().toISOString() };
    const answer = JSON.stringify(holder) + '\n';
    const waiting = new Set<Socket>();
    const server = createServer((socket) => {
      socket.unref();
      socket.on('error', () => undefined); // a waiting run that gave up
      socket.on('close', () => waiting.delete(socket));
      waiting.add(socket);
      socket.write(answer);
    });
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') done(undefined);
      else fail(new MoatError(`cannot take the lock: ${error.message}`, { code: 'lock' }));
    });
    server.listen(name, () => {
      server.removeAllListeners('error');
      server.on('error', () => undefined);
      // The lock alone never keeps a process alive.
      server.unref();
      held.set(server, waiting);
      done(server);
    });
  });
}

/** Lets go: the name is free once the listening socket is closed, here and in every program. */
function release(server: Server): void {
  const waiting = held.get(server);
  held.delete(server);
  server.close();
  for (const socket of waiting ?? []) socket.destroy();
}

type Watched =
  /** The holder let go (or died) while we watched: try to take the lock again. */
  | { readonly kind: 'released' }
  /** Nobody listens: the holder let go between our bind and our connect. */
  | { readonly kind: 'gone' }
  /** Still held when we stopped watching; `holder` if it said who it is. */
  | { readonly kind: 'held'; readonly holder?: Holder };

/**
 * Connects to the holder and waits until it lets go, or until `deadline` (a holder that said
 * who it is) or `silentDeadline` (one that did not). The kernel resets our connection the
 * instant the last process holding the socket ends.
 */
function watchHolder(name: string, deadline: number, silentDeadline: number): Promise<Watched> {
  return new Promise((done) => {
    let text = '';
    let holder: Holder | undefined;
    let connected = false;
    const socket = connect(name);
    const finish = (result: Watched): void => {
      clearTimeout(timer);
      socket.destroy();
      done(result);
    };
    const stopAt = (at: number): NodeJS.Timeout =>
      setTimeout(
        () => {
          finish(holder === undefined ? { kind: 'held' } : { kind: 'held', holder });
        },
        Math.max(0, at - Date.now()),
      );
    let timer = stopAt(Math.max(deadline, silentDeadline));
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
    });
    socket.on('data', (chunk: string) => {
      if (holder !== undefined) return;
      text += chunk;
      const line = text.split('\n', 2);
      if (line.length < 2) return;
      holder = parseHolder(line[0] ?? '');
      // A moat holder: wait for it only until the run's own deadline.
      if (holder !== undefined) {
        clearTimeout(timer);
        timer = stopAt(deadline);
      }
    });
    socket.on('close', () => {
      finish({ kind: connected ? 'released' : 'gone' });
    });
    socket.on('error', () => undefined); // 'close' follows
  });
}

function parseHolder(text: string): Holder | undefined {
  try {
    const value = JSON.parse(text) as Partial<Holder>;
    if (
      typeof value.pid === 'number' &&
      typeof value.command === 'string' &&
      typeof value.since === 'string'
    ) {
      return { pid: value.pid, command: value.command, since: value.since };
    }
  } catch {
    // not a moat holder
  }
  return undefined;
}

function busy(lockFile: string, holder: Holder | 'silent' | 'vanishing'): LockBusyError {
  const who =
    holder === 'vanishing'
      ? 'held by another moat run that is starting or finishing'
      : holder === 'silent'
        ? 'held by a process that does not say who it is: programs a killed moat run started, ' +
          'still running, or not moat at all (`ss -xlp | grep moat-lock` names it)'
        : `held by pid ${holder.pid} (${holder.command}) since ${holder.since}`;
  return new LockBusyError(`the lock ${lockFile} is ${who}; nothing was changed`);
}

/** Parses `0`, `30`, `500ms`, `30s`, `2m`; returns milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (match === null) {
    throw new MoatError(`invalid duration "${text}": use e.g. 0, 30s, 2m or 500ms`, {
      code: 'usage',
    });
  }
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  return Math.round(value * (unit === 'ms' ? 1 : unit === 's' ? 1000 : 60_000));
}

/** Takes the lock, waiting up to `timeoutMs` for a moat holder to let go; else LockBusyError. */
async function acquire(lockFile: string, timeoutMs: number, command: string): Promise<Server> {
  const name = lockSocketName(lockFile);
  const deadline = Date.now() + timeoutMs;
  const silentDeadline = Date.now() + Math.max(timeoutMs, SILENT_GRACE_MS);
  let vanished = 0;
  for (;;) {
    const server = await bind(name, command);
    if (server !== undefined) return server;
    const watched = await watchHolder(name, deadline, silentDeadline);
    if (watched.kind === 'released') continue;
    if (watched.kind === 'held') throw busy(lockFile, watched.holder ?? 'silent');
    // Gone between our bind and connect: try again, pausing once it keeps happening.
    if (++vanished > VANISHED_RETRIES) {
      if (Date.now() >= deadline) throw busy(lockFile, 'vanishing');
      await new Promise((wake) => setTimeout(wake, VANISHED_PAUSE_MS));
    }
  }
}

/** Takes the lock (waiting up to timeoutMs), runs `work`, releases. */
export async function withLock<T>(
  lockFile: string,
  timeoutMs: number,
  command: string,
  work: () => Promise<T>,
): Promise<T> {
  const server = await acquire(lockFile, timeoutMs, command);
  try {
    return await work();
  } finally {
    release(server);
  }
}

/**
 * A process of its own that holds moat's apply lock with moat's own code (the built
 * dist/host/lock.js), in the test's network namespace or in another one, for tests that need a
 * holder to ask, release or kill with SIGKILL. It can also start a program that "writes the
 * firewall" (a `sleep`, started the way moat starts iptables-restore), which holds the lock with
 * it. Every process started here is stopped by its pid when the test file ends.
 */
import { afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertBuilt } from './moat-cli.js';

const DIST = resolve(import.meta.dirname, '../../dist/host');

// argv after `-e`: lock.js, exec-runner.js, lock file, command, timeout ms, writer seconds, pid file
const HOLDER = `
const [, lockJs, runnerJs, lockFile, command, timeoutMs, writerSeconds, pidFile] = process.argv;
const { withLock } = await import(lockJs);
const { execRunner } = await import(runnerJs);
const stdinEnded = new Promise((done) => {
  process.stdin.on('end', done);
  process.stdin.resume();
});
try {
  await withLock(lockFile, Number(timeoutMs), command, async () => {
    const writer =
      writerSeconds === '0'
        ? undefined
        : execRunner('sh', ['-c', 'echo $$ > "$0"; exec sleep ' + writerSeconds, pidFile],
            undefined, { holdsLock: true });
    process.stdout.write('held\\n');
    await stdinEnded;
    await writer;
  });
  process.stdout.write('released\\n');
} catch (error) {
  process.stdout.write('refused ' + error.message + '\\n');
  process.exitCode = error.exitCode ?? 1;
}
process.stdin.destroy();
`;

export interface LockHolder {
  readonly pid: number;
  /** Resolves once it holds the lock; rejects with the refusal if it was refused. */
  readonly held: Promise<void>;
  /** Everything it printed so far (`held`, `released`, `refused …`). */
  output(): string;
  /** Lets go (ends its stdin) and waits for it to exit. */
  release(): Promise<number | null>;
  /** SIGKILL, and waits until it is gone. */
  kill9(): Promise<void>;
  readonly exited: Promise<number | null>;
  /** The pid of the firewall-writing program it started, once that has started. */
  writerPid(): number | undefined;
}

const started: { pid: number; pidFile?: string }[] = [];

afterAll(() => {
  for (const { pid, pidFile } of started.splice(0)) {
    for (const target of [pid, pidFile === undefined ? undefined : readPid(pidFile)]) {
      if (target === undefined) continue;
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Whether the process runs: a zombie (ended, not yet reaped by its new parent) does not. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/**
 * Starts a holder of `lockFile`.
 * @param options.netns a network namespace file (`/var/run/netns/NAME`) to hold it in
 * @param options.writer start a program holding the lock too: `sleep seconds`, its pid in pidFile
 */
export function holdLock(
  lockFile: string,
  options: {
    command?: string;
    netns?: string;
    timeoutMs?: number;
    writer?: { seconds: number; pidFile: string };
  } = {},
): LockHolder {
  assertBuilt();
  const args = [
    '--input-type=module',
    '-e',
    HOLDER,
    pathToFileURL(resolve(DIST, 'lock.js')).href,
    pathToFileURL(resolve(DIST, 'exec-runner.js')).href,
    lockFile,
    options.command ?? 'lock-holder (test)',
    String(options.timeoutMs ?? 0),
    String(options.writer?.seconds ?? 0),
    options.writer?.pidFile ?? '',
  ];
  // nsenter execs node without forking: the pid is node's.
  const child =
    options.netns === undefined
      ? spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })
      : spawn('nsenter', [`--net=${options.netns}`, process.execPath, ...args], {
          stdio: ['pipe', 'pipe', 'inherit'],
        });
  if (child.pid === undefined) throw new Error('could not start the lock holder');
  const pid = child.pid;
  started.push(options.writer === undefined ? { pid } : { pid, pidFile: options.writer.pidFile });
  let output = '';
  const exited = new Promise<number | null>((done) => {
    child.on('exit', (code) => {
      done(code);
    });
  });
  const held = new Promise<void>((done, fail) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('held\n')) done();
      else if (output.includes('refused')) fail(new Error(output.trim()));
    });
    void exited.then(() => {
      fail(new Error(`the lock holder exited: ${output.trim()}`));
    });
  });
  held.catch(() => undefined);
  return {
    pid,
    held,
    exited,
    output: () => output,
    release: async () => {
      child.stdin.end();
      return exited;
    },
    kill9: async () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    },
    writerPid: () => (options.writer === undefined ? undefined : readPid(options.writer.pidFile)),
  };
}

/** Waits (bounded) until `check` holds. */
export async function until(check: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (check()) return true;
    await sleep(5);
  }
  return check();
}

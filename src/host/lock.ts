/**
 * One apply at a time per host: cron, a person and CI may start moat at the same moment.
 * proper-lockfile makes an atomic lock directory and refreshes its mtime while held, so a lock
 * left by a killed run (even SIGKILL) goes stale after STALE_MS and the next run takes it over.
 * Who holds it is written beside, so a busy lock can name its holder.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import { ExitCode, MoatError } from '../core/errors.js';

export const DEFAULT_LOCK_PATH = '/run/moat.lock';
const STALE_MS = 10_000;
const RETRY_MS = 200;

export class LockBusyError extends MoatError {
  constructor(message: string) {
    super(message, { code: 'lock-busy', exitCode: ExitCode.lockBusy });
  }
}

/** Beside the lock directory, which must stay empty for its atomic removal. */
function holderPath(path: string): string {
  return `${path}.holder.json`;
}

interface Holder {
  readonly pid: number;
  readonly command: string;
  readonly since: string;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/**
 * Who holds the lock, or undefined when no holder shows itself. The holder writes its file just
 * after taking the lock and removes it just before releasing, so a missing file means a run
 * that is starting or finishing: look again briefly before giving up.
 */
async function describeHolder(path: string): Promise<string | undefined> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const holder = JSON.parse(await readFile(holderPath(path), 'utf8')) as Holder;
      const where = `pid ${holder.pid} (${holder.command}) since ${holder.since}`;
      return isRunning(holder.pid)
        ? `held by ${where}`
        : `held by ${where}, which is no longer running; the lock goes stale ${STALE_MS / 1000} s after it died`;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return undefined;
}

/** Tries to take the lock a few times when its holder was just finishing. */
const FINISHING_RETRIES = 2;

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

/** Takes the lock (waiting up to timeoutMs), runs `work`, releases. */
export async function withLock<T>(
  path: string,
  timeoutMs: number,
  command: string,
  work: () => Promise<T>,
): Promise<T> {
  // Loaded here, not at the top: only commands that take the lock pay for it.
  // A CommonJS package: node's loader and the bundle both put module.exports on `default`.
  type LockModule = typeof import('proper-lockfile');
  const loaded = (await import('proper-lockfile')) as LockModule & { default?: LockModule };
  const lockfile = loaded.default ?? loaded;
  let release: (() => Promise<void>) | undefined;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; release === undefined; attempt++) {
    try {
      release = await lockfile.lock(path, {
        lockfilePath: path,
        realpath: false,
        stale: STALE_MS,
        retries: {
          retries: Math.max(0, Math.ceil((deadline - Date.now()) / RETRY_MS)),
          factor: 1,
          minTimeout: RETRY_MS,
          maxTimeout: RETRY_MS,
        },
      });
    } catch (error) {
      if ((error as { code?: string }).code !== 'ELOCKED') {
        throw new MoatError(`cannot take the lock ${path}: ${(error as Error).message}`, {
          code: 'lock',
        });
      }
      const holder = await describeHolder(path);
      // No holder shows itself: most likely one that was finishing as we asked; try again.
      if (holder === undefined && attempt < FINISHING_RETRIES) continue;
      throw new LockBusyError(
        `the lock ${path} is ${holder ?? 'held by another moat run that is starting or finishing'}; nothing was changed`,
      );
    }
  }
  try {
    const holder: Holder = { pid: process.pid, command, since: new Date().toISOString() };
    await writeFile(holderPath(path), JSON.stringify(holder) + '\n');
    return await work();
  } finally {
    await rm(holderPath(path), { force: true }).catch(() => undefined);
    await release().catch(() => undefined);
  }
}

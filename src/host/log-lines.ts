/**
 * Lines of a log file (a ulogd2 LOGEMU or JSON file), read to its end and, when following, as
 * they are appended, like `tail -n +1 -F`: a file that is rotated or truncated is read again
 * from its start. Or the lines of a stream (standard input) until it ends.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { UserError } from '../core/errors.js';

const CHUNK = 64 * 1024;
const POLL_MS = 250;

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

async function openLog(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new UserError(
      `cannot read log file ${path}: ${code === 'ENOENT' ? 'no such file' : String(code)}`,
      'log-unreadable',
    );
  }
}

export interface FollowOptions {
  readonly follow: boolean;
  /** Stops following (and reading) when aborted. */
  readonly signal?: AbortSignal;
  readonly pollMs?: number;
}

/** The lines of a file; with `follow`, also those appended later, until `signal` aborts. */
export async function* fileLines(path: string, options: FollowOptions): AsyncGenerator<string> {
  let handle = await openLog(path);
  let inode = (await handle.stat()).ino;
  let position = 0;
  let decoder = new StringDecoder('utf8');
  let rest = '';
  const buffer = Buffer.alloc(CHUNK);
  try {
    while (options.signal?.aborted !== true) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, position);
      if (bytesRead > 0) {
        position += bytesRead;
        const lines = (rest + decoder.write(buffer.subarray(0, bytesRead))).split('\n');
        rest = lines.pop() ?? '';
        yield* lines;
        continue;
      }
      if (!options.follow) break;
      await pause(options.pollMs ?? POLL_MS, options.signal);
      const now = await stat(path).catch(() => undefined);
      if (now !== undefined && (now.ino !== inode || now.size < position)) {
        // Rotated or truncated: what is at the path now is read from its start.
        await handle.close();
        handle = await openLog(path);
        inode = now.ino;
        position = 0;
        decoder = new StringDecoder('utf8');
        rest = '';
      }
    }
    if (rest !== '') yield rest;
  } finally {
    await handle.close();
  }
}

/** The lines of a stream until it ends. */
export async function* streamLines(input: Readable): AsyncGenerator<string> {
  yield* createInterface({ input, crlfDelay: Infinity });
}

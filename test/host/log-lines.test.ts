/**
 * Reading a log as `moat drops --log FILE [--follow]` does: the lines there, then those appended
 * (a line written in pieces comes out whole), the file again from its start after a rotation or
 * a truncation, and an end when following stops. Real files, written while the reader reads.
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileLines, streamLines } from '../../src/host/log-lines.js';

const dir = mkdtempSync(join(tmpdir(), 'moat-log-'));

/** Collects lines until `count` have come or `ms` passed. */
async function collect(lines: AsyncGenerator<string>, out: string[]): Promise<void> {
  for await (const line of lines) out.push(line);
}

async function until(test: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test() && Date.now() < deadline) await sleep(20);
  if (!test()) throw new Error('timed out');
}

describe('log lines', () => {
  test('without following: the lines there, the last one even without a newline', async () => {
    const file = join(dir, 'a.log');
    writeFileSync(file, 'one\ntwo\nthree');
    const out: string[] = [];
    await collect(fileLines(file, { follow: false }), out);
    expect(out).toEqual(['one', 'two', 'three']);
  });

  test('following: appended lines, a rotated file from its start, a truncated one too; abort ends it', async () => {
    const file = join(dir, 'b.log');
    writeFileSync(file, 'first\n');
    const stop = new AbortController();
    const out: string[] = [];
    const reading = collect(
      fileLines(file, { follow: true, signal: stop.signal, pollMs: 20 }),
      out,
    );
    await until(() => out.length === 1);
    appendFileSync(file, 'sec');
    await sleep(100);
    appendFileSync(file, 'ond\n');
    await until(() => out.length === 2);
    renameSync(file, `${file}.1`); // logrotate
    writeFileSync(file, 'after rotation\n');
    await until(() => out.length === 3);
    writeFileSync(file, 'x\n'); // truncated in place, shorter than what was read
    await until(() => out.length === 4);
    stop.abort();
    await reading;
    expect(out).toEqual(['first', 'second', 'after rotation', 'x']);
  });

  test('a stream: its lines until it ends', async () => {
    const out: string[] = [];
    await collect(streamLines(Readable.from(['a\nb', '\nc\n'])), out);
    expect(out).toEqual(['a', 'b', 'c']);
  });

  test('a missing file is a user error naming it', async () => {
    await expect(collect(fileLines(join(dir, 'none.log'), { follow: false }), [])).rejects.toThrow(
      /cannot read log file .*none\.log: no such file/,
    );
  });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

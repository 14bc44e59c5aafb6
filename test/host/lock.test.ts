/**
 * The apply lock (src/host/lock.ts) between real processes: an abstract unix socket that the
 * kernel frees the instant its holder dies, however it dies. Holders run moat's own built code
 * in processes of their own (test/support/lock-holder.ts).
 */
import { afterAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode } from '../../src/core/errors.js';
import { LockBusyError, lockSocketName, parseDuration, withLock } from '../../src/host/lock.js';
import { alive, holdLock, until } from '../support/lock-holder.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';

const work = mkdtempSync(join(tmpdir(), 'moat-lock-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});
let count = 0;
/** A lock of its own for each test: names are per path, so tests never share one. */
const lockPath = (): string => join(work, `moat-${++count}.lock`);

const refusal = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => 'taken',
    (error: unknown) => error,
  );

describe('lock', () => {
  test('a held lock refuses a second holder with exit 4 and names the holder', async () => {
    const path = lockPath();
    let inner: unknown;
    await withLock(path, 0, 'moat apply -f first.yaml', async () => {
      inner = await refusal(withLock(path, 0, 'second', () => Promise.resolve('ran')));
    });
    expect(inner).toBeInstanceOf(LockBusyError);
    const error = inner as LockBusyError;
    expect(error.exitCode).toBe(ExitCode.lockBusy);
    expect(error.message).toMatch(
      new RegExp(
        `^the lock ${path} is held by pid ${process.pid} \\(moat apply -f first.yaml\\) ` +
          `since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z; nothing was changed$`,
      ),
    );
    // Released afterwards: a third run gets it.
    await expect(withLock(path, 0, 'third', () => Promise.resolve('ran'))).resolves.toBe('ran');
  });

  test('a holder in another process is named with its pid and command', async () => {
    const path = lockPath();
    const holder = holdLock(path, { command: 'moat apply -f other.yaml' });
    await holder.held;
    const refused = await refusal(withLock(path, 0, 'second', () => Promise.resolve('ran')));
    expect((refused as Error).message).toMatch(
      new RegExp(`held by pid ${holder.pid} \\(moat apply -f other.yaml\\) since \\d{4}-`),
    );
    expect(await holder.release()).toBe(0);
    await expect(withLock(path, 0, 'third', () => Promise.resolve('ran'))).resolves.toBe('ran');
  });

  test('a waiting run gets the lock once it is released within --lock-timeout', async () => {
    const path = lockPath();
    const order: string[] = [];
    const first = withLock(path, 0, 'first', async () => {
      order.push('first');
      await sleep(300);
      order.push('first done');
    });
    await sleep(50);
    const second = withLock(path, 5000, 'second', () => {
      order.push('second');
      return Promise.resolve();
    });
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'first done', 'second']);
  });

  test('--lock-timeout runs out: exit 4 naming the holder, after waiting', async () => {
    const path = lockPath();
    const holder = holdLock(path, { command: 'moat apply -f slow.yaml' });
    await holder.held;
    const started = Date.now();
    const refused = await refusal(withLock(path, 400, 'second', () => Promise.resolve('ran')));
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(refused).toBeInstanceOf(LockBusyError);
    expect((refused as Error).message).toContain(`held by pid ${holder.pid} (moat apply -f slow`);
    await holder.release();
  });

  test('concurrent runs in separate processes take turns: never two at once', async () => {
    const path = lockPath();
    const holders = Array.from({ length: 5 }, (_, i) =>
      holdLock(path, { command: `run ${i}`, timeoutMs: 30_000 }),
    );
    const overlaps: string[] = [];
    for (let turn = 0; turn < holders.length; turn++) {
      // Exactly one holds the lock now; the others are waiting.
      const holding = await Promise.race(holders.map((h, i) => h.held.then(() => i)));
      const alsoHolding = holders.filter((h, i) => i !== holding && h.output().includes('held'));
      if (alsoHolding.length > 0) overlaps.push(`turn ${turn}: ${alsoHolding.length} more`);
      await sleep(30);
      const current = holders[holding];
      if (current === undefined) throw new Error('no holder');
      expect(await current.release()).toBe(0);
      holders.splice(holding, 1);
    }
    expect(overlaps).toEqual([]);
  }, 60_000);

  test('durations', () => {
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(() => parseDuration('soon')).toThrow(/invalid duration "soon"/);
  });

  test('socket names: the absolute path, whole sun_path, a digest when the path is too long', () => {
    const named = lockSocketName('/run/moat.lock');
    expect(named.startsWith('\0moat-lock:/run/moat.lock ')).toBe(true);
    expect(Buffer.byteLength(named)).toBe(108);
    expect(lockSocketName('moat.lock')).toBe(lockSocketName(join(process.cwd(), 'moat.lock')));
    expect(lockSocketName('/run/a.lock')).not.toBe(lockSocketName('/run/b.lock'));
    const long = lockSocketName(`/run/${'x'.repeat(200)}.lock`);
    expect(long).toMatch(/^\0moat-lock:sha256:[0-9a-f]{64} +$/);
    expect(Buffer.byteLength(long)).toBe(108);
  });
});

describe('a holder that dies', () => {
  test('SIGKILL at random instants: the next run takes the lock at once, every time', async () => {
    const path = lockPath();
    // How long a holder takes to start and take the lock, so the kills spread over both.
    const t0 = Date.now();
    const first = holdLock(path);
    await first.held;
    const startMs = Date.now() - t0;
    await first.release();
    const log: string[] = [];
    for (let i = 0; i < 12; i++) {
      const holder = holdLock(path, { command: `holder ${i}` });
      // Sometimes before it holds the lock, mostly while it holds it.
      const delay = Math.floor(Math.random() * startMs * 2);
      await sleep(delay);
      const held = holder.output().includes('held');
      await holder.kill9();
      const taken = await refusal(withLock(path, 0, `next ${i}`, () => Promise.resolve()));
      log.push(
        `#${i} killed after ${delay} ms (${held ? 'holding' : 'starting'}): ${String(taken)}`,
      );
      expect({ log, taken }).toEqual({ log, taken: 'taken' });
    }
    expect(log.filter((l) => l.includes('(holding)')).length).toBeGreaterThan(0);
  }, 60_000);

  test('killed while a program it started still writes: the next run waits for that program, then takes the lock', async () => {
    const path = lockPath();
    const pidFile = join(work, `writer-${count}.pid`);
    const holder = holdLock(path, { writer: { seconds: 1.5, pidFile } });
    await holder.held;
    expect(await until(() => holder.writerPid() !== undefined)).toBe(true);
    const writer = holder.writerPid() ?? 0;
    await holder.kill9();
    expect(alive(writer)).toBe(true);
    // With --lock-timeout 0: a holder that cannot say who it is is waited for, not refused.
    const writerAliveWhenTaken = await withLock(path, 0, 'next', () =>
      Promise.resolve(alive(writer)),
    );
    expect(writerAliveWhenTaken).toBe(false);
  });

  test('a process that holds the name and says nothing (not moat): refused after a grace, no pid named', async () => {
    const path = lockPath();
    const squatter = createServer(() => undefined);
    await new Promise<void>((done) => squatter.listen(lockSocketName(path), done));
    try {
      const started = Date.now();
      const refused = await refusal(withLock(path, 0, 'next', () => Promise.resolve()));
      expect(refused).toBeInstanceOf(LockBusyError);
      expect((refused as Error).message).toMatch(/does not say who it is/);
      expect((refused as Error).message).not.toMatch(/pid/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
    } finally {
      squatter.close();
    }
    await expect(withLock(path, 0, 'after', () => Promise.resolve('ran'))).resolves.toBe('ran');
  }, 30_000);
});

describeWith(['root', 'ip'], 'the lock belongs to a network namespace', () => {
  test('holders in two network namespaces do not block each other; in the same one they do', async () => {
    const a = NetNs.create('la');
    const b = NetNs.create('lb');
    try {
      const path = lockPath();
      const inA = holdLock(path, { netns: a.path, command: 'in a' });
      await inA.held;
      const inB = holdLock(path, { netns: b.path, command: 'in b' });
      await inB.held;
      // Nor is the test's own namespace blocked by either.
      await expect(withLock(path, 0, 'here', () => Promise.resolve('ran'))).resolves.toBe('ran');
      const againInA = holdLock(path, { netns: a.path, command: 'again in a' });
      await expect(againInA.held).rejects.toThrow(
        new RegExp(`refused the lock ${path} is held by pid ${inA.pid} \\(in a\\)`),
      );
      expect(await againInA.exited).toBe(4);
      expect(await inA.release()).toBe(0);
      expect(await inB.release()).toBe(0);
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});

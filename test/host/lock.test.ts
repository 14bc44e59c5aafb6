import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode } from '../../src/core/errors.js';
import lockfile from 'proper-lockfile';
import { LockBusyError, parseDuration, withLock } from '../../src/host/lock.js';

function lockPath(): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'moat-lock-'));
  return {
    path: join(dir, 'moat.lock'),
    done: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('lock', () => {
  test('a held lock refuses a second holder with exit 4 and names the holder', async () => {
    const { path, done } = lockPath();
    try {
      let inner: unknown;
      await withLock(path, 0, 'moat apply -f first.yaml', async () => {
        inner = await withLock(path, 0, 'second', () => Promise.resolve('ran')).catch(
          (e: unknown) => e,
        );
      });
      expect(inner).toBeInstanceOf(LockBusyError);
      const error = inner as LockBusyError;
      expect(error.exitCode).toBe(ExitCode.lockBusy);
      expect(error.message).toMatch(
        new RegExp(`held by pid ${process.pid} \\(moat apply -f first.yaml\\) since \\d{4}-`),
      );
      // Released afterwards: a third run gets it.
      await expect(withLock(path, 0, 'third', () => Promise.resolve('ran'))).resolves.toBe('ran');
    } finally {
      done();
    }
  });

  test('a waiting run gets the lock once it is released within --lock-timeout', async () => {
    const { path, done } = lockPath();
    try {
      const order: string[] = [];
      const first = withLock(path, 0, 'first', async () => {
        order.push('first');
        await new Promise((r) => setTimeout(r, 300));
      });
      await new Promise((r) => setTimeout(r, 50));
      const second = withLock(path, 2000, 'second', () => {
        order.push('second');
        return Promise.resolve();
      });
      await Promise.all([first, second]);
      expect(order).toEqual(['first', 'second']);
    } finally {
      done();
    }
  });

  test('durations', () => {
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(() => parseDuration('soon')).toThrow(/invalid duration "soon"/);
  });
});

describe('lock held by a run that shows no holder', () => {
  test('one that finishes as we ask: the refused run takes the lock after all', async () => {
    const { path, done } = lockPath();
    try {
      // Held without a holder file, as a moat run holds it in its last instant; released soon.
      const release = await lockfile.lock(path, { lockfilePath: path, realpath: false });
      const releasing = new Promise<void>((resolve) =>
        setTimeout(() => {
          void release().then(resolve);
        }, 100),
      );
      await expect(withLock(path, 0, 'second', () => Promise.resolve('ran'))).resolves.toBe('ran');
      await releasing;
    } finally {
      done();
    }
  });

  test('one that keeps it: refused, and no pid is named', async () => {
    const { path, done } = lockPath();
    try {
      const release = await lockfile.lock(path, { lockfilePath: path, realpath: false });
      try {
        const refused = await withLock(path, 0, 'second', () => Promise.resolve('ran')).catch(
          (e: unknown) => e,
        );
        expect(refused).toBeInstanceOf(LockBusyError);
        expect((refused as Error).message).toMatch(/starting or finishing; nothing was changed$/);
        expect((refused as Error).message).not.toMatch(/pid/);
      } finally {
        await release();
      }
    } finally {
      done();
    }
  });
});

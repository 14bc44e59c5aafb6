/**
 * watch's decisions: reconcile at start, after Docker events (debounced into one pass), after the
 * event stream breaks (a daemon restart) once it reconnects, and stop on abort. The Docker side
 * is a real HTTP server on a unix socket that injects the faults; the apply is a recorder.
 */
import { describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from '../../src/app/context.js';
import type { Io } from '../../src/app/io.js';
import { createView } from '../../src/app/view.js';
import { watchCommand } from '../../src/app/watch.js';

const dir = mkdtempSync(join(tmpdir(), 'moat-watch-'));

function until(test: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (test()) resolve();
      else if (Date.now() > deadline) reject(new Error('timed out'));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

describe('watch', () => {
  test('reconciles at start, at once when a container starts, once per burst of other events, again after the stream breaks; stops on abort', async () => {
    const socketPath = join(dir, 'docker.sock');
    const streams: ServerResponse[] = [];
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/events') !== true) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      streams.push(res);
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const reasons: string[] = [];
    const out: string[] = [];
    const io: Io = {
      out: (t) => out.push(t),
      err: (t) => out.push(t),
      interactive: false,
      ask: () => Promise.resolve(''),
      readStdin: () => Promise.resolve(Buffer.alloc(0)),
    };
    const ctx: Context = {
      io,
      runner: () => Promise.reject(new Error('no commands in this test')),
      env: { DOCKER_HOST: `unix://${socketPath}` },
      view: createView(io, { kind: 'text', color: false }),
    };
    const stop = new AbortController();
    const fakeApply = (): Promise<number> => {
      reasons.push(out.filter((l) => l.includes('reconciling')).at(-1) ?? '');
      return Promise.resolve(0);
    };
    const options = {
      file: 'firewall.yaml',
      backend: 'auto',
      autoApprove: true,
      quiet: true,
      detailedExitcode: false,
      lockFile: join(dir, 'lock'),
      lockTimeoutMs: 0,
      stateDir: join(dir, 'state'),
      logFormat: 'text',
      intervalMs: 60_000,
      debounceMs: 100,
    } as const;
    const watching = watchCommand(ctx, options, stop.signal, fakeApply);
    try {
      await until(() => reasons.length === 1 && streams.length === 1);
      expect(reasons[0]).toContain('(start)');

      const event = (action: string, name: string) =>
        JSON.stringify({ Type: 'container', Action: action, Actor: { Attributes: { name } } }) +
        '\n';
      streams[0]?.write(event('start', 'app') + event('die', 'old'));
      streams[0]?.write(
        'not json\n' + JSON.stringify({ Type: 'container', Action: 'exec_start' }) + '\n',
      );
      await until(() => reasons.length === 3);
      expect(reasons[1]).toContain('container app start'); // at once: it has its addresses now
      expect(reasons[2]).toContain('container old die'); // the rest, after the debounce
      await new Promise((r) => setTimeout(r, 300));
      expect(reasons).toHaveLength(3); // irrelevant events: no pass

      streams[0]?.end(); // the daemon went away
      await until(() => streams.length === 2, 5000); // reconnected after back-off
      await until(() => reasons.length === 4);
      expect(reasons[3]).toContain('(reconnected)');
      expect(out.join('')).toContain('reconnecting to Docker in 1s');
    } finally {
      stop.abort();
      await expect(watching).resolves.toBe(0);
      for (const s of streams) s.end();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
    expect(out.join('')).toContain('stopped');
  }, 20_000);
});

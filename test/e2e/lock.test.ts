/**
 * The apply lock dies with its holder (issue 18), against a real dockerd and the built CLI:
 * `moat apply` and `moat watch` killed with SIGKILL at random instants are followed at once by
 * another run, which is never refused; a run killed while its iptables-restore still writes
 * keeps the next one out until that program ends; and the lock belongs to a network namespace.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { kill9, startMoat, waitGroupGone, type RunningMoat } from '../support/apply-harness.js';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { alive, until } from '../support/lock-holder.js';
import { CLI, moat, PolicyDir } from '../support/moat-cli.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';
import { EMPTY, HOST_ONLY } from '../support/policies.js';

const RESTORE_TOOLS = [
  'iptables-nft-restore',
  'ip6tables-nft-restore',
  'iptables-legacy-restore',
  'ip6tables-legacy-restore',
];

describeWith(
  ['root', 'dockerd', 'iptables', 'ipset', 'ip', 'busybox', 'curl'],
  'a lock that dies with its holder',
  () => {
    let sandbox: DockerSandbox;
    const policy = new PolicyDir();
    const work = mkdtempSync(join(tmpdir(), 'moat-lock-e2e-'));
    const stateDir = join(work, 'state');
    // One lock for every run, as on a real host.
    const lockFile = join(work, 'moat.lock');
    const shims = join(work, 'slow-tools');
    const writersFile = join(work, 'writers.pids');

    const run = (args: readonly string[]) => moat(sandbox, args, sandbox.env);
    const applyArgs = (extra: readonly string[] = []): string[] => [
      'apply',
      '-f',
      policy.file,
      '--auto-approve',
      '--lock-file',
      lockFile,
      '--history-dir',
      stateDir,
      ...extra,
    ];
    const planIsEmpty = (): boolean =>
      run(['plan', '-f', policy.file, '--detailed-exitcode']).status === 0;
    const converge = (text: string): void => {
      policy.write(text);
      const applied = run(applyArgs());
      if (applied.status !== 0) throw new Error(`apply failed: ${applied.stderr}`);
      expect(planIsEmpty()).toBe(true);
    };
    /** The pids of the slow restores started so far (each appends its own). */
    const writers = (): number[] =>
      existsSync(writersFile)
        ? readFileSync(writersFile, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map(Number)
        : [];
    /** `moat apply` whose iptables-restore first sleeps `seconds` (fault injection by PATH). */
    const startSlowApply = (seconds: number): RunningMoat => {
      rmSync(writersFile, { force: true });
      return startMoat(sandbox, applyArgs(), {
        PATH: `${shims}:${process.env.PATH ?? ''}`,
        MOAT_TEST_WRITERS: writersFile,
        MOAT_TEST_SLOW: String(seconds),
      });
    };

    beforeAll(async () => {
      // Wrappers that note their pid and sleep before running the real restore.
      mkdirSync(shims);
      for (const tool of RESTORE_TOOLS) {
        const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
        const path = real.stdout.trim();
        if (path === '') continue;
        const shim = join(shims, tool);
        writeFileSync(
          shim,
          `#!/bin/sh\necho $$ >> "$MOAT_TEST_WRITERS"\nsleep "$MOAT_TEST_SLOW"\nexec ${path} "$@"\n`,
        );
        chmodSync(shim, 0o755);
      }
      sandbox = await DockerSandbox.start();
      sandbox.runHttpd('ghost', ['2368:2368'], [], 2368);
    }, 180_000);

    afterAll(async () => {
      for (const pid of writers()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await (sandbox as DockerSandbox | undefined)?.stop();
      policy.remove();
      rmSync(work, { recursive: true, force: true });
    }, 120_000);

    test('apply killed with SIGKILL at random instants: the next apply, started at once, is never refused', async () => {
      converge(EMPTY);
      // How long an apply that changes something takes, so the kills spread over all of it.
      policy.write(HOST_ONLY);
      const t0 = Date.now();
      expect(run(applyArgs()).status).toBe(0);
      const applyMs = Date.now() - t0;
      const log: string[] = [];
      const deadline = Date.now() + 240_000;
      for (let i = 0; i < 12 && Date.now() < deadline; i++) {
        policy.write(i % 2 === 0 ? EMPTY : HOST_ONLY);
        const running = startMoat(sandbox, applyArgs());
        const delay = Math.floor(Math.random() * applyMs * 1.1);
        const whole = i % 2 === 0 ? 'process' : 'group';
        await sleep(delay);
        kill9(running.pid, whole);
        const killed = await running.done;
        // At once, without --lock-timeout, and without waiting for the programs it started.
        const t1 = Date.now();
        const next = run(applyArgs());
        const what = `#${i} killed (${whole}) after ${delay} ms (exit ${killed.status}): next exit ${next.status} in ${Date.now() - t1} ms`;
        log.push(what);
        expect({ what, status: next.status, stderr: next.stderr }).toEqual({
          what,
          status: 0,
          stderr: '',
        });
        // Nothing the killed run started wrote after the next run: the host still matches.
        expect(await waitGroupGone(running.pid)).toBe(true);
        expect({ what, planIsEmpty: planIsEmpty() }).toEqual({ what, planIsEmpty: true });
      }
      process.stdout.write(`lock kill loop (full apply ${applyMs} ms):\n  ${log.join('\n  ')}\n`);
      expect(log.length).toBeGreaterThanOrEqual(8);
    }, 300_000);

    test('killed while its iptables-restore still writes: the next apply waits for that program, then applies', async () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const running = startSlowApply(6);
      expect(await until(() => writers().length > 0, 60_000)).toBe(true);
      kill9(running.pid, 'process');
      await running.done;
      const orphans = writers();
      expect(orphans.some(alive)).toBe(true);

      const next = run(applyArgs());
      expect(next.stderr).toBe('');
      expect(next.status).toBe(0);
      // It ran only once the killed run's restores had ended (they sleep 6 s, it takes ~1 s).
      expect(orphans.filter(alive)).toEqual([]);
      expect(await waitGroupGone(running.pid)).toBe(true);
      expect(planIsEmpty()).toBe(true);
    }, 120_000);

    test('the lock belongs to a network namespace: a run in another one is not blocked, one in the same is', async () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const other = NetNs.create('lk');
      try {
        const holding = startSlowApply(5);
        expect(await until(() => writers().length > 0, 60_000)).toBe(true);

        const busy = run(applyArgs());
        expect(busy.status).toBe(4);
        expect(busy.stderr).toContain(
          `the lock ${lockFile} is held by pid ${holding.pid} (moat apply -f ${policy.file})`,
        );

        // The same lock file, the same Docker daemon, another network namespace (its own
        // firewall, with no DOCKER-USER: moat jumps from FORWARD there).
        const elsewhere = spawnSync(
          'nsenter',
          [`--net=${other.path}`, process.execPath, CLI, ...applyArgs()],
          { encoding: 'utf8', env: { ...process.env, ...sandbox.env, NO_COLOR: '1' } },
        );
        expect(elsewhere.stderr).toBe('');
        expect(elsewhere.status).toBe(0);
        expect(writers().some(alive)).toBe(true); // the first one still held its lock meanwhile
        expect(other.exec('iptables', ['-S', 'FORWARD'])).toContain('-j MOAT-FORWARD');

        const first = await holding.done;
        expect(first.stderr).toBe('');
        expect(first.status).toBe(0);
        expect(planIsEmpty()).toBe(true);
      } finally {
        other.destroy();
      }
    }, 120_000);

    test('moat watch started right after its predecessor was killed with SIGKILL starts at once', async () => {
      converge(EMPTY);
      const watchArgs = [
        'watch',
        '-f',
        policy.file,
        '--lock-file',
        lockFile,
        '--history-dir',
        stateDir,
        '--log-format',
        'json',
        '--debounce',
        '200ms',
        '--interval',
        '10m',
        // Not the default 30s: a lock its predecessor left behind would be refused.
        '--lock-timeout',
        '0',
      ];
      const log: string[] = [];
      for (let i = 0; i < 4; i++) {
        // Each start pass has work to do: the killed one may die in the middle of it.
        policy.write(i % 2 === 0 ? HOST_ONLY : EMPTY);
        const first = startMoat(sandbox, watchArgs);
        expect(
          await until(() => first.output().stdout.includes('reconciling (start)'), 30_000),
        ).toBe(true);
        const delay = Math.floor(Math.random() * 600);
        await sleep(delay);
        kill9(first.pid, 'process');
        await first.done;

        const second = startMoat(sandbox, watchArgs);
        const passed = await until(
          () =>
            second.output().stdout.includes('"event":"apply"') ||
            second.output().stderr.includes('apply failed'),
          30_000,
        );
        process.kill(second.pid, 'SIGTERM');
        const ended = await second.done;
        const what = `#${i} predecessor killed ${delay} ms into its start pass`;
        log.push(`${what}: ${ended.stderr.trim() || 'no error'}`);
        expect({ what, passed, stderr: ended.stderr, status: ended.status }).toEqual({
          what,
          passed: true,
          stderr: '',
          status: 0,
        });
        expect(ended.stdout).toMatch(/"event":"apply".*"result":"(changed|unchanged)"/);
        expect(await waitGroupGone(first.pid)).toBe(true);
        expect({ what, planIsEmpty: planIsEmpty() }).toEqual({ what, planIsEmpty: true });
      }
      process.stdout.write(`watch restarts:\n  ${log.join('\n  ')}\n`);
    }, 300_000);
  },
);

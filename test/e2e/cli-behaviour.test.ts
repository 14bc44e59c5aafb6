/**
 * How `moat apply` (and `plan --out`, `show`) behave for the people and the cron jobs that run
 * them (issue 6), against a real dockerd and the built CLI: every refusal has its own exit code
 * and message, and leaves the host exactly as it was.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firewallState, kill9, startMoat, waitGroupGone } from '../support/apply-harness.js';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { holdLock, until } from '../support/lock-holder.js';
import { describeWith } from '../support/prereq.js';
import { EMPTY, HOST_ONLY } from '../support/policies.js';

const WAN_ALLOWED = `version: 1
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host, 198.51.100.2]
`;
// Line 6, column 16: an unknown source.
const INVALID = `version: 1
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [hots]
`;

const STACK_FRAME = /^\s+at /m;

describeWith(
  ['root', 'dockerd', 'iptables', 'ipset', 'ip', 'busybox', 'curl'],
  'moat apply at the command line',
  () => {
    let sandbox: DockerSandbox;
    const policy = new PolicyDir();
    const work = mkdtempSync(join(tmpdir(), 'moat-cli-behaviour-'));
    const lockFile = join(work, 'moat.lock');
    const stateDir = join(work, 'state');

    const run = (args: readonly string[], env: Record<string, string> = {}) =>
      moat(sandbox, args, { ...sandbox.env, ...env });
    const apply = (args: readonly string[], env: Record<string, string> = {}) =>
      run(
        ['apply', '-f', policy.file, '--lock-file', lockFile, '--history-dir', stateDir, ...args],
        env,
      );
    const host = () => firewallState(sandbox);
    /** Applies `text` and checks the host then matches it. */
    const converge = (text: string): void => {
      policy.write(text);
      const applied = apply(['--auto-approve']);
      if (applied.status !== 0) throw new Error(`apply failed: ${applied.stderr}`);
      expect(run(['plan', '-f', policy.file, '--detailed-exitcode']).status).toBe(0);
    };

    beforeAll(async () => {
      sandbox = await DockerSandbox.start();
      sandbox.runHttpd('ghost', ['2368:2368'], [], 2368);
    }, 180_000);

    afterAll(async () => {
      await (sandbox as DockerSandbox | undefined)?.stop();
      policy.remove();
      rmSync(work, { recursive: true, force: true });
    }, 120_000);

    test('without a terminal and without --auto-approve, apply refuses: exit 1, host unchanged', () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const before = host();
      const result = apply([]);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(
        'moat: not a terminal: pass --auto-approve to apply without confirmation (nothing was changed)\n',
      );
      // It still shows what it would have done.
      expect(result.stdout).toContain('ghost 2368/tcp: reachable from host only');
      expect(host()).toBe(before);
    });

    /** A moat-like holder of the lock in the sandbox's network namespace, where apply runs. */
    const holder = async () => {
      const held = holdLock(lockFile, {
        netns: sandbox.host.path,
        command: 'moat apply -f held-by-test.yaml',
      });
      await held.held;
      return held;
    };
    /**
     * Sockets named after `path` in the sandbox (/proc/net/unix there): the holder's, plus one
     * per run connected to it while it waits.
     */
    const lockSockets = (path: string): number =>
      sandbox
        .execInHost('cat', ['/proc/net/unix'])
        .stdout.split('\n')
        .filter((line) => line.includes(`@moat-lock:${path} `)).length;

    test('a lock held by another moat run: exit 4, the holder named, host unchanged', async () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const before = host();
      const held = await holder();
      const result = apply(['--auto-approve']);
      await held.release();
      expect(result.status).toBe(4);
      expect(result.stderr).toMatch(
        new RegExp(
          `^moat: the lock ${lockFile} is held by pid ${held.pid} \\(moat apply -f held-by-test\\.yaml\\) ` +
            `since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z; nothing was changed\\n$`,
        ),
      );
      expect(result.stdout).toBe('');
      expect(host()).toBe(before);
    });

    test('--lock-timeout waits for a busy lock, then exits 4', async () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const before = host();
      const held = await holder();
      const started = Date.now();
      const result = apply(['--auto-approve', '--lock-timeout', '2s']);
      const waited = Date.now() - started;
      await held.release();
      expect(result.status).toBe(4);
      expect(waited).toBeGreaterThanOrEqual(2_000);
      expect(waited).toBeLessThan(8_000);
      expect(host()).toBe(before);
      // Released: the same apply now goes through.
      expect(apply(['--auto-approve', '--lock-timeout', '2s']).status).toBe(0);
    });

    test('a lock whose holder is killed while a run waits for it: that run goes on at once', async () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const held = await holder();
      const waiting = startMoat(sandbox, [
        'apply',
        '-f',
        policy.file,
        '--auto-approve',
        '--lock-file',
        lockFile,
        '--history-dir',
        stateDir,
        '--lock-timeout',
        '60s',
      ]);
      // The waiting run is connected to the holder: a second socket of that name.
      expect(await until(() => lockSockets(lockFile) >= 2, 20_000)).toBe(true);
      await held.kill9();
      const result = await waiting.done;
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(run(['plan', '-f', policy.file, '--detailed-exitcode']).status).toBe(0);
    }, 60_000);

    test('a lock left by a run killed with SIGKILL: the next run takes it at once', async () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const killedLock = join(work, 'killed.lock');
      const args = [
        'apply',
        '-f',
        policy.file,
        '--auto-approve',
        '--lock-file',
        killedLock,
        '--history-dir',
        stateDir,
      ];
      const running = startMoat(sandbox, args);
      // Killed the moment it holds the lock.
      expect(await until(() => lockSockets(killedLock) > 0, 20_000)).toBe(true);
      kill9(running.pid, 'process');
      await running.done;

      // No --lock-timeout: refused if anything were still held.
      const next = run(args);
      expect(next.stderr).toBe('');
      expect(next.status).toBe(0);
      expect(await waitGroupGone(running.pid)).toBe(true);
      expect(run(['plan', '-f', policy.file, '--detailed-exitcode']).status).toBe(0);
    }, 60_000);

    test('a saved plan gone stale (moat objects changed, policy edited, other version): exit 3, nothing applied', () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const planFile = join(work, 'stale.json');
      const plan = () => {
        const saved = run(['plan', '-f', policy.file, '--out', planFile]);
        expect(saved.status).toBe(0);
      };

      // A moat-owned object appeared since the plan was made.
      plan();
      const chain = `MOAT-X${Math.floor(Math.random() * 1e6)}`;
      expect(sandbox.execInHost('iptables', ['-N', chain]).status).toBe(0);
      let before = host();
      const afterChain = apply([planFile]);
      expect(afterChain.status).toBe(3);
      expect(afterChain.stderr).toMatch(/^moat: .*changed since .*; nothing was applied/);
      expect(host()).toBe(before);
      expect(sandbox.execInHost('iptables', ['-X', chain]).status).toBe(0);

      // The policy file was edited since.
      plan();
      appendFileSync(policy.file, '# edited after planning\n');
      before = host();
      const afterEdit = apply([planFile]);
      expect(afterEdit.status).toBe(3);
      expect(afterEdit.stderr).toContain(`${policy.file} changed since ${planFile} was made`);
      expect(host()).toBe(before);

      // Made by another version of moat.
      plan();
      const doc = JSON.parse(readFileSync(planFile, 'utf8')) as Record<string, unknown>;
      writeFileSync(planFile, JSON.stringify({ ...doc, tool_version: '0.0.0-other' }));
      before = host();
      const otherVersion = apply([planFile]);
      expect(otherVersion.status).toBe(3);
      expect(otherVersion.stderr).toContain('was made by moat 0.0.0-other');
      expect(host()).toBe(before);

      // A fresh plan goes through, without --auto-approve: the saved plan is the approval.
      plan();
      const fresh = apply([planFile]);
      expect(fresh.stderr).toBe('');
      expect(fresh.status).toBe(0);
      expect(host()).not.toBe(before);
      expect(run(['plan', '-f', policy.file, '--detailed-exitcode']).status).toBe(0);
    });

    test('an unreachable Docker daemon: exit 1, the socket named, no stack trace, host unchanged', () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const before = host();

      const missing = join(work, 'nobody.sock');
      const gone = apply(['--auto-approve'], { DOCKER_HOST: `unix://${missing}` });
      expect(gone.status).toBe(1);
      expect(gone.stderr).toContain(`the socket ${missing} does not exist`);
      expect(gone.stderr).not.toMatch(STACK_FRAME);
      expect(gone.stderr).not.toContain('internal error');

      // A socket file left behind by a daemon that is no longer there.
      const dead = join(work, 'dead.sock');
      const made = sandbox.execInHost(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(dead)}, () => process.exit(0))`,
      ]);
      expect(made.status).toBe(0);
      expect(existsSync(dead)).toBe(true);
      const refused = apply(['--auto-approve'], { DOCKER_HOST: `unix://${dead}` });
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain(`nothing listens on ${dead}`);
      expect(refused.stderr).not.toMatch(STACK_FRAME);
      expect(refused.stderr).not.toContain('internal error');

      expect(host()).toBe(before);
    });

    test('an invalid policy: exit 1, FILE:LINE:COL: error: on stderr, host unchanged', () => {
      converge(HOST_ONLY);
      policy.write(INVALID);
      const before = host();
      const result = apply(['--auto-approve']);
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(
        new RegExp(`^${policy.file.replace(/[.]/g, '\\.')}:6:\\d+: error: `, 'm'),
      );
      expect(result.stderr).not.toMatch(STACK_FRAME);
      expect(host()).toBe(before);
    });

    test('--quiet: nothing printed when nothing changed, one summary line when something did', () => {
      converge(EMPTY);
      const unchanged = apply(['--auto-approve', '--quiet']);
      expect(unchanged).toEqual({ status: 0, stdout: '', stderr: '' });

      policy.write(HOST_ONLY);
      const changed = apply(['--auto-approve', '--quiet']);
      expect(changed.status).toBe(0);
      expect(changed.stderr).toBe('');
      expect(changed.stdout).toMatch(
        /^Apply complete: [1-9]\d* added, 0 changed, 0 destroyed\.\n$/,
      );

      const again = apply(['--auto-approve', '--quiet']);
      expect(again).toEqual({ status: 0, stdout: '', stderr: '' });
    });

    test('--detailed-exitcode: 2 when changes were applied, 0 when there were none', () => {
      converge(HOST_ONLY);
      policy.write(WAN_ALLOWED);
      const changed = apply(['--auto-approve', '--detailed-exitcode']);
      expect(changed.stderr).toBe('');
      expect(changed.status).toBe(2);
      expect(changed.stdout).toContain('Apply complete:');
      const unchanged = apply(['--auto-approve', '--detailed-exitcode']);
      expect(unchanged.status).toBe(0);
      expect(unchanged.stdout).toContain('No changes.');
    });

    test('moat show prints a saved plan again, as text and as JSON', () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const textFile = join(work, 'show.json');
      const planned = run(['plan', '-f', policy.file, '--out', textFile]);
      expect(planned.status).toBe(0);
      const [planText, saved] = planned.stdout.split('\nSaved the plan to ');
      expect(saved).toBe(`${textFile}; apply exactly it with: moat apply ${textFile}\n`);

      // show reads only the file: no Docker, no iptables needed.
      const nowhere = { DOCKER_HOST: `unix://${join(work, 'nobody.sock')}` };
      const shown = run(['show', textFile], nowhere);
      expect(shown.stderr).toBe('');
      expect(shown.status).toBe(0);
      expect(shown.stdout).toBe(planText);
      expect(shown.stdout).toContain('ghost 2368/tcp: reachable from host only');

      const jsonFile = join(work, 'show-json.json');
      const plannedJson = run(['plan', '-f', policy.file, '--json', '--out', jsonFile]);
      expect(plannedJson.status).toBe(0);
      const shownJson = run(['show', jsonFile, '--json'], nowhere);
      expect(shownJson.status).toBe(0);
      expect(shownJson.stdout).toBe(plannedJson.stdout);
      const doc = JSON.parse(shownJson.stdout) as { format_version: number; steps: unknown[] };
      expect(doc.format_version).toBe(2);
      expect(doc.steps.length).toBeGreaterThan(0);
    });

    test('apply --snapshot DIR (or the old --state) is refused: apply changes a live host', () => {
      converge(EMPTY);
      policy.write(HOST_ONLY);
      const snapshot = join(work, 'snapshot');
      expect(run(['snapshot', '--out', snapshot]).status).toBe(0);
      const before = host();
      const result = apply(['--auto-approve', '--snapshot', snapshot]);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe('moat: apply changes a live host; it does not take --snapshot\n');
      expect(result.stdout).toBe('');
      const old = apply(['--auto-approve', '--state', snapshot]);
      expect(old.status).toBe(1);
      expect(old.stderr).toBe(
        'moat: warning: --state is deprecated and will be removed; use --snapshot\n' +
          'moat: apply changes a live host; it does not take --snapshot\n',
      );
      expect(host()).toBe(before);
    });
  },
);

/**
 * `moat apply` never leaves a host half-changed (issue 6), against a real dockerd and the built
 * CLI: many applies started at once, and applies killed with SIGKILL at random instants.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  filterRules,
  httpStatusFromWanAsync,
  ipsetNames,
  kill9,
  startMoat,
  waitGroupGone,
} from '../support/apply-harness.js';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';
import { EMPTY, HOST_ONLY } from '../support/policies.js';

// The wan client's IPv4 address is in the set: it may connect over IPv4, not over IPv6 (an
// ipv4 set never matches IPv6 clients).
const WAN_ALLOWED = `version: 1
ipsets:
  trusted:
    family: ipv4
    entries: [198.51.100.2, 192.0.2.7]
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host, ipset:trusted]
`;

type PolicyName = 'empty' | 'host-only' | 'wan-allowed';
const POLICIES: Record<PolicyName, string> = {
  empty: EMPTY,
  'host-only': HOST_ONLY,
  'wan-allowed': WAN_ALLOWED,
};
/** Whether the wan client reaches ghost's port over [IPv4, IPv6] once a policy is applied. */
const REACH: Record<PolicyName, readonly [boolean, boolean]> = {
  empty: [true, true],
  'host-only': [false, false],
  'wan-allowed': [true, false],
};

const V4 = 'http://198.51.100.1:2368/';
const V6 = 'http://[2001:db8:100::1]:2368/';
const HOLDER = /held by pid (\d+) \(moat apply [^)]*\) since \d{4}-\d\d-\d\dT/;

describeWith(
  ['root', 'dockerd', 'iptables', 'ipset', 'ip', 'busybox', 'curl'],
  'apply never leaves the host half-changed',
  () => {
    let sandbox: DockerSandbox;
    const policy = new PolicyDir();
    const work = mkdtempSync(join(tmpdir(), 'moat-apply-safety-'));
    const stateDir = join(work, 'state');
    let lockCount = 0;
    const freshLock = (): string => join(work, `moat-${++lockCount}.lock`);
    /** Runs refused with exit 4 in the concurrency test, checked on their own below. */
    const refusals: { stderr: string; pids: number[]; context: string[] }[] = [];

    const run = (args: readonly string[]) => moat(sandbox, args, sandbox.env);
    const write = (name: PolicyName): string => policy.write(POLICIES[name]);
    const applyArgs = (
      lockFile: string,
      extra: readonly string[] = [],
      runsDir = stateDir,
    ): string[] => [
      'apply',
      '-f',
      policy.file,
      '--auto-approve',
      '--lock-file',
      lockFile,
      '--history-dir',
      runsDir,
      ...extra,
    ];
    const planIsEmpty = (file = policy.file): boolean =>
      run(['plan', '-f', file, '--detailed-exitcode']).status === 0;
    const reach = async (): Promise<[boolean, boolean]> => {
      const [v4, v6] = await Promise.all([
        httpStatusFromWanAsync(sandbox, V4),
        httpStatusFromWanAsync(sandbox, V6),
      ]);
      return [v4 !== '000', v6 !== '000'];
    };

    /**
     * moat's objects are whole and single: one jump to MOAT-FORWARD (from DOCKER-USER, or from
     * FORWARD in ip6tables where Docker made no DOCKER-USER) and one to MOAT-INPUT from INPUT
     * per family, no rule twice in a moat chain, no moat id twice; none of it for `empty`.
     */
    const expectOneJumpEach = (name: PolicyName, what: string): void => {
      const none = name === 'empty';
      for (const family of ['ipv4', 'ipv6'] as const) {
        const chains = filterRules(sandbox, family);
        const jumps = (target: string) =>
          [...chains.entries()].flatMap(([chain, rules]) =>
            chain.startsWith('MOAT-')
              ? []
              : rules.filter((r) => r.endsWith(`-j ${target}`)).map(() => chain),
          );
        const forwardJumps = jumps('MOAT-FORWARD');
        expect({ what, family, forwardJumps }).toEqual({
          what,
          family,
          forwardJumps: none
            ? []
            : [
                family === 'ipv4'
                  ? 'DOCKER-USER'
                  : expect.stringMatching(/^(DOCKER-USER|FORWARD)$/),
              ],
        });
        expect({ what, family, inputJumps: jumps('MOAT-INPUT') }).toEqual({
          what,
          family,
          inputJumps: none ? [] : ['INPUT'],
        });
        if (none) {
          const moatChains = [...chains.keys()].filter((c) => c.startsWith('MOAT-'));
          expect({ what, family, moatChains }).toEqual({ what, family, moatChains: [] });
        }
        for (const [chain, rules] of chains) {
          if (!chain.startsWith('MOAT-')) continue;
          const duplicates = rules.filter((rule, i) => rules.indexOf(rule) !== i);
          expect({ what, family, chain, duplicates }).toEqual({
            what,
            family,
            chain,
            duplicates: [],
          });
        }
        const ids = [...chains.values()]
          .flat()
          .flatMap((rule) => /moat:([0-9a-f]+)/.exec(rule)?.[1] ?? []);
        const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
        expect({ what, family, twice }).toEqual({ what, family, twice: [] });
      }
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

    test('six applies started at once: each exits 0 or 4, one wins, one jump each, no duplicates', async () => {
      const rounds: { policy: PolicyName; lockTimeout: string }[] = [
        // No waiting: the losers give up at once.
        { policy: 'host-only', lockTimeout: '0' },
        // Waiting: all six get their turn, one after the other; only the first has work.
        { policy: 'wan-allowed', lockTimeout: '60s' },
        // Removing everything, all at once.
        { policy: 'empty', lockTimeout: '0' },
      ];
      for (const round of rounds) {
        write(round.policy);
        const lockFile = freshLock();
        const runsDir = join(work, `runs-${round.policy}`);
        const runs = Array.from({ length: 6 }, () =>
          startMoat(sandbox, applyArgs(lockFile, ['--lock-timeout', round.lockTimeout], runsDir)),
        );
        const pids = runs.map((r) => r.pid);
        const results = await Promise.race([
          Promise.all(runs.map((r) => r.done)),
          sleep(90_000, undefined, { ref: false }).then(() => undefined),
        ]);
        if (results === undefined) {
          for (const pid of pids) kill9(pid, 'group');
          throw new Error(`round ${round.policy}: the applies did not finish within 90 s`);
        }
        const statuses = results.map((r) => r.status);
        const context = results.map((r, i) => `#${i} exit ${r.status}: ${r.stderr.trim()}`);
        for (const result of results) expect([0, 4]).toContain(result.status);
        expect(statuses.filter((s) => s === 0).length).toBeGreaterThanOrEqual(1);
        // Exactly one of them had something to do.
        expect(results.filter((r) => r.stdout.includes('Apply complete:')).length).toBe(1);
        if (round.lockTimeout !== '0') expect(statuses).toEqual([0, 0, 0, 0, 0, 0]);
        for (const busy of results.filter((r) => r.status === 4)) {
          expect(busy.stderr).toContain(`moat: the lock ${lockFile} is held by`);
          expect(busy.stderr).toContain('nothing was changed');
          expect(busy.stdout).toBe('');
          refusals.push({ stderr: busy.stderr, pids, context });
        }

        expectOneJumpEach(round.policy, round.policy);
        // Every run that took the lock is in the history; the ones refused are not.
        const history = JSON.parse(readFileSync(join(runsDir, 'runs.json'), 'utf8')) as {
          runs: { result: string }[];
        };
        expect(history.runs.map((r) => r.result).sort()).toEqual(
          [
            ...statuses
              .filter((s) => s === 0)
              .map(() => 'unchanged')
              .slice(1),
            'changed',
          ].sort(),
        );
        expect(ipsetNames(sandbox).filter((n) => n.startsWith('moat-'))).toEqual(
          round.policy === 'wan-allowed' ? ['moat-trusted'] : [],
        );
        expect(run(['plan', '-f', policy.file, '--detailed-exitcode']).status).toBe(0);
        expect(await reach()).toEqual(REACH[round.policy]);
      }
    }, 300_000);

    // A refused run names the holder that answered it: a live run of its own round.
    test('each refused run names the holder: a run of its own round, with its command and start time', () => {
      expect(refusals.length).toBeGreaterThan(0);
      for (const { stderr, pids, context } of refusals) {
        const named = Number(HOLDER.exec(stderr)?.[1]);
        expect({ stderr, namesOneOfThisRound: pids.includes(named), context }).toEqual({
          stderr,
          namesOneOfThisRound: true,
          context,
        });
      }
    });

    test('SIGKILL at random instants: old or new rules per family, never a port opened, next apply repairs', async () => {
      write('empty');
      expect(run(applyArgs(freshLock())).status).toBe(0);
      expect(planIsEmpty()).toBe(true);
      let current: PolicyName = 'empty';

      // How long an apply that changes something takes, so the kills spread over all of it.
      write('host-only');
      const t0 = Date.now();
      expect(run(applyArgs(freshLock())).status).toBe(0);
      const applyMs = Date.now() - t0;
      current = 'host-only';
      expect(await reach()).toEqual(REACH['host-only']);

      // Every transition: newly protecting, protected before and after (with an ipset created
      // and destroyed), and opening again.
      const cycle: PolicyName[] = ['wan-allowed', 'host-only', 'empty', 'host-only'];
      const iterations = 16;
      const deadline = Date.now() + 300_000;
      const log: { text: string }[] = [];
      let landed = { old: 0, new: 0, between: 0 };
      for (let i = 0; i < iterations && Date.now() < deadline; i++) {
        const target = cycle[i % cycle.length] ?? 'empty';
        const old = current;
        write(target);
        const lockFile = freshLock();
        const delay = Math.floor(Math.random() * applyMs * 1.1);
        const whole = i % 2 === 0 ? 'process' : 'group';
        const running = startMoat(sandbox, applyArgs(lockFile));
        await sleep(delay);
        kill9(running.pid, whole);
        const ended = await running.done;
        expect(await waitGroupGone(running.pid)).toBe(true);

        // What must hold now. Each family's iptables-restore is atomic, and IPv4 goes before
        // IPv6, so the families hold (old, old), (new, old) or (new, new): never (old, new).
        // An ipset step killed half-way changes no rule. Hence the wan client's reach over
        // [IPv4, IPv6] is one of these, and a port both policies protect from it is never open.
        const o = REACH[old];
        const n = REACH[target];
        const allowed = [
          [o[0], o[1]],
          [n[0], o[1]],
          [n[0], n[1]],
        ];
        const seen = await reach();
        const what =
          `#${i} ${old} -> ${target}, killed (${whole}) after ${delay} ms ` +
          `(exit ${ended.status}, signal ${ended.signal}): wan reaches [v4, v6] = [${seen.join(', ')}]`;
        const entry = { text: what };
        log.push(entry);
        const permitted = allowed.some(([v4, v6]) => v4 === seen[0] && v6 === seen[1]);
        expect({ what, permitted }).toEqual({ what, permitted: true });

        const state = planIsEmpty(policy.write(POLICIES[old]))
          ? 'old'
          : planIsEmpty(policy.write(POLICIES[target]))
            ? 'new'
            : 'between';
        landed = { ...landed, [state]: landed[state] + 1 };
        entry.text += `; host holds ${state}`;

        // The next run repairs, without --lock-timeout: the kernel freed the killed run's lock.
        write(target);
        const t1 = Date.now();
        const repair = run(applyArgs(lockFile));
        entry.text += `; repair exit ${repair.status} in ${Date.now() - t1} ms`;
        expect({ what, status: repair.status, stderr: repair.stderr }).toEqual({
          what,
          status: 0,
          stderr: '',
        });
        const replan = run(['plan', '-f', policy.file, '--detailed-exitcode']);
        expect({
          what,
          repair: repair.stdout,
          replan: replan.stdout,
          status: replan.status,
        }).toEqual({
          what,
          repair: repair.stdout,
          replan: replan.stdout,
          status: 0,
        });
        expect({ what, reach: await reach() }).toEqual({ what, reach: REACH[target] });
        expectOneJumpEach(target, what);
        expect({
          what,
          strays: ipsetNames(sandbox).filter(
            (n) => n.startsWith('moat-') && !(target === 'wan-allowed' && n === 'moat-trusted'),
          ),
        }).toEqual({ what, strays: [] });
        current = target;
      }
      process.stdout.write(
        `apply-safety kill loop (full apply ${applyMs} ms, landed ${JSON.stringify(landed)}):\n  ` +
          `${log.map((e) => e.text).join('\n  ')}\n`,
      );
      expect(log.length).toBeGreaterThanOrEqual(8);
    }, 420_000);
  },
);

/**
 * apply against the real kernel, both iptables backends, in throwaway namespaces: a plan
 * applied and re-read plans empty; a failure at any step leaves the ruleset as it was.
 * Fakes only inject faults (a restore that fails).
 */
import { afterEach, beforeEach, expect, test } from '@jest/globals';
import {
  applyPlan,
  ApplyFailedError,
  StalePlanError,
  type ApplyEnvironment,
} from '../../src/apply/apply.js';
import { compile } from '../../src/compile/compile.js';
import type { CommandRunner } from '../../src/core/runner.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import type { IptablesBackend, LiveNetfilter } from '../../src/netfilter/model.js';
import { readLiveNetfilter } from '../../src/netfilter/read.js';
import { diff } from '../../src/plan/diff.js';
import type { Policy } from '../../src/policy/model.js';
import { container, group, inventory, managedIpset, policy, tcp } from '../support/builders.js';
import { NetNs } from '../support/netns.js';
import { describeWith } from '../support/prereq.js';
import { fixture, nsRunner, recording } from '../netfilter/kernel-support.js';

const DOCKER_V4 = fixture('docker-20.10-live.iptables-save');
const DOCKER_V6 =
  '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\n-A DOCKER-USER -s 2001:db8::9/128 -j DROP\n-A DOCKER-USER -j RETURN\nCOMMIT\n';

const inv = inventory(
  container('ghost', '172.30.0.3', [{ host: 2368 }]),
  container('app', '172.17.0.9'),
);
const full: Policy = policy(
  [
    group('ghost', {
      ingress: [{ ports: [tcp(2368)], from: [{ kind: 'host' }, { kind: 'ipset', set: 'office' }] }],
    }),
    group('app', {
      egress: { default: 'deny', allow: [{ to: [{ kind: 'ipset', set: 'allowed' }] }], deny: [] },
    }),
  ],
  {
    ipsets: new Map([
      managedIpset('office', 'hash:net', ['198.51.100.0/24']),
      managedIpset('allowed', 'hash:ip', ['203.0.113.5']),
    ]),
  },
);

function environment(
  ns: NetNs,
  backend: IptablesBackend,
  p: Policy,
  runner: CommandRunner = nsRunner(ns),
): ApplyEnvironment {
  const readLive = () => readLiveNetfilter(nsRunner(ns), backend);
  return {
    runner,
    backend,
    readLive,
    replan: (live) => diff(compile(p, inv, hostFacts(live)), live),
  };
}

function planOn(live: LiveNetfilter, p: Policy) {
  return diff(compile(p, inv, hostFacts(live)), live);
}

/** The policy with ghost also open to the host on `port`: a change to MOAT-INPUT. */
function ghostAlsoOn(p: Policy, port: number): Policy {
  return {
    ...p,
    containers: p.containers.map((g) =>
      g.name === 'ghost'
        ? { ...g, ingress: [...g.ingress, { ports: [tcp(port)], from: [{ kind: 'host' }] }] }
        : g,
    ),
  };
}

/** Everything the host holds, as saved, without counters: what "unchanged" is compared on. */
function saved(ns: NetNs, backend: IptablesBackend): string {
  const strip = (text: string) =>
    text
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
  return [
    strip(ns.exec(`iptables-${backend}-save`, ['-t', 'filter'])),
    strip(ns.exec(`ip6tables-${backend}-save`, ['-t', 'filter'])),
    ns.exec('ipset', ['save']),
  ].join('\n');
}

for (const backend of ['nft', 'legacy'] as const) {
  describeWith(
    ['root', 'ip', 'ipset', backend === 'nft' ? 'iptables' : 'iptables-legacy'],
    `apply on ${backend}`,
    () => {
      let ns: NetNs;
      beforeEach(() => {
        ns = NetNs.create('ap');
        ns.exec(`iptables-${backend}-restore`, [], DOCKER_V4);
        ns.exec(`ip6tables-${backend}-restore`, [], DOCKER_V6);
      });
      afterEach(() => {
        ns.destroy();
      });

      test('a plan applied leaves an empty plan, and an empty policy then removes everything moat made', async () => {
        const env = environment(ns, backend, full);
        const before = saved(ns, backend);
        const plan = planOn(await env.readLive(), full);
        expect(plan.steps.length).toBeGreaterThan(0);
        await expect(applyPlan(plan, env)).resolves.toEqual({ changed: true });
        expect(planOn(await env.readLive(), full).steps).toEqual([]);
        const during = saved(ns, backend);
        expect(during).toContain('-A DOCKER-USER -s 2001:db8::9/128 -j DROP');
        expect(during).toMatch(/create moat-allowed hash:ip family inet/);

        // Nothing to do writes nothing.
        const idle = planOn(await env.readLive(), full);
        await expect(applyPlan(idle, env)).resolves.toEqual({ changed: false });

        const empty = policy([]);
        await applyPlan(planOn(await env.readLive(), empty), environment(ns, backend, empty));
        expect(saved(ns, backend)).toBe(before);
      });

      test('a changed ipset is swapped in place; its rules stay', async () => {
        const env = environment(ns, backend, full);
        await applyPlan(planOn(await env.readLive(), full), env);
        const changed: Policy = {
          ...full,
          ipsets: new Map([
            ...full.ipsets,
            managedIpset('allowed', 'hash:ip', ['203.0.113.6', '203.0.113.7']),
          ]),
        };
        const plan = planOn(await env.readLive(), changed);
        expect(plan.steps.map((s) => s.kind)).toContain('update-set');
        await applyPlan(plan, environment(ns, backend, changed));
        const sets = ns.exec('ipset', ['save']);
        expect(sets).toContain('add moat-allowed 203.0.113.6');
        expect(sets).not.toContain('203.0.113.5');
        expect(sets).not.toContain('.swp');
      });

      test('a changed chain is edited in place: unchanged rules keep their packet counters', async () => {
        const env = environment(ns, backend, full);
        await applyPlan(planOn(await env.readLive(), full), env);
        ns.exec('ping', ['-c', '2', '-i', '0.2', '-W', '1', '127.0.0.1']); // replies count in MOAT-INPUT
        const counted = () =>
          /^\[(\d+):\d+\] -A MOAT-INPUT .*--ctdir REPLY -j RETURN$/m.exec(
            ns.exec(`iptables-${backend}-save`, ['-c', '-t', 'filter']),
          )?.[1];
        expect(Number(counted())).toBeGreaterThan(0);
        const before = counted();
        const more = ghostAlsoOn(full, 9000);
        const plan = planOn(await env.readLive(), more);
        expect(
          plan.steps.some(
            (s) => s.kind === 'update-chain' && s.chain === 'MOAT-INPUT' && s.edits !== undefined,
          ),
        ).toBe(true);
        await applyPlan(plan, environment(ns, backend, more));
        expect(planOn(await env.readLive(), more).steps).toEqual([]);
        expect(counted()).toBe(before);
      });

      test('an IPv6 restore that fails after IPv4 succeeded: everything is rolled back', async () => {
        const real = nsRunner(ns);
        const failing: CommandRunner = (command, args, input) =>
          command.startsWith('ip6tables') && !args.includes('--test')
            ? Promise.resolve({ stdout: '', stderr: 'injected failure', exitCode: 1 })
            : real(command, args, input);
        const env = environment(ns, backend, full, failing);
        const before = saved(ns, backend);
        const plan = planOn(await env.readLive(), full);
        const outcome = applyPlan(plan, env);
        await expect(outcome).rejects.toBeInstanceOf(ApplyFailedError);
        await expect(outcome).rejects.toThrow(/injected failure[\s\S]*the host is as it was/);
        expect(saved(ns, backend)).toBe(before);
      });

      test('a rule the kernel rejects fails the check before anything changes', async () => {
        const env = environment(ns, backend, full);
        const plan = planOn(await env.readLive(), full);
        const broken = {
          ...plan,
          steps: plan.steps.map((s) =>
            s.kind === 'create-chain' && s.chain === 'MOAT-INPUT'
              ? {
                  ...s,
                  rules: [
                    ...s.rules,
                    { id: 'bad', spec: 'x', line: '-m nosuchmatch --foo -j DROP' },
                  ],
                }
              : s,
          ),
        };
        const before = saved(ns, backend);
        await expect(applyPlan(broken, env)).rejects.toThrow(/the host is as it was/);
        expect(saved(ns, backend)).toBe(before);
      });

      test('one family only: no separate --test; a refused restore changes nothing, its new sets go', async () => {
        const real = nsRunner(ns);
        const ran: string[] = [];
        const recording: CommandRunner = (command, args, input) => {
          ran.push([command, ...args].join(' '));
          return real(command, args, input);
        };
        const env = environment(ns, backend, full, recording);
        const plan = planOn(await env.readLive(), full);
        const ipv4 = plan.steps.filter((s) => 'family' in s && s.family === 'ipv4');
        expect(ipv4.some((s) => s.kind === 'create-set')).toBe(true);
        const broken = {
          ...plan,
          steps: ipv4.map((s) =>
            s.kind === 'create-chain' && s.chain === 'MOAT-INPUT'
              ? {
                  ...s,
                  rules: [...s.rules, { id: 'bad', spec: 'x', line: '-m nosuchmatch -j DROP' }],
                }
              : s,
          ),
        };
        const before = saved(ns, backend);
        await expect(applyPlan(broken, env)).rejects.toThrow(/the host is as it was/);
        expect(saved(ns, backend)).toBe(before);
        expect(ran.filter((line) => line.includes('--test'))).toEqual([]);
        expect(ran.filter((line) => line.startsWith(`ip6tables-${backend}-restore`))).toEqual([]);
      });

      test('a rule that did not land (dropped from the restore input) fails verification and is rolled back', async () => {
        const real = nsRunner(ns);
        let dropped: string | undefined;
        const lossy: CommandRunner = (command, args, input) => {
          // Only the apply's own commit: the rollback's goes through this runner too.
          if (
            dropped === undefined &&
            command === `iptables-${backend}-restore` &&
            !args.includes('--test') &&
            input !== undefined
          ) {
            const lines = input.split('\n');
            const last = lines.findLastIndex((l) => l.startsWith('-A MOAT-'));
            dropped = lines.splice(last, 1)[0];
            return real(command, args, lines.join('\n'));
          }
          return real(command, args, input);
        };
        const env = environment(ns, backend, full, lossy);
        const before = saved(ns, backend);
        const plan = planOn(await env.readLive(), full);
        const outcome = applyPlan(plan, env);
        await expect(outcome).rejects.toBeInstanceOf(ApplyFailedError);
        await expect(outcome).rejects.toThrow(
          /verification failed: .*still differs[\s\S]*the host is as it was/,
        );
        expect(dropped).toMatch(/^-A MOAT-/);
        expect(saved(ns, backend)).toBe(before);
      });

      test('a rule changed right after the restore fails verification; what moat owned is put back', async () => {
        const env = environment(ns, backend, full);
        await applyPlan(planOn(await env.readLive(), full), env);
        const applied = saved(ns, backend);
        const more = ghostAlsoOn(full, 9000);
        const real = nsRunner(ns);
        // Someone deletes moat's first rule of MOAT-INPUT the moment the IPv4 restore is done
        // (once: the rollback's restore goes through this runner too).
        let meddled = false;
        const meddling: CommandRunner = async (command, args, input) => {
          const result = await real(command, args, input);
          if (!meddled && command === `iptables-${backend}-restore` && !args.includes('--test')) {
            meddled = true;
            ns.exec(`iptables-${backend}`, ['-D', 'MOAT-INPUT', '1']);
          }
          return result;
        };
        const plan = planOn(await env.readLive(), more);
        expect(plan.steps.some((s) => 'chain' in s && s.chain === 'MOAT-INPUT')).toBe(true);
        const outcome = applyPlan(plan, environment(ns, backend, more, meddling));
        await expect(outcome).rejects.toThrow(/verification failed[\s\S]*the host is as it was/);
        expect(saved(ns, backend)).toBe(applied);
      });

      test('a set member that did not land fails verification and is rolled back', async () => {
        const real = nsRunner(ns);
        let lost = false;
        const lossy: CommandRunner = (command, args, input) => {
          if (!lost && command === 'ipset' && args[0] === 'restore' && input !== undefined) {
            lost = true;
            return real(command, args, input.replace(/^add moat-allowed .*\n/m, ''));
          }
          return real(command, args, input);
        };
        const env = environment(ns, backend, full, lossy);
        const before = saved(ns, backend);
        const outcome = applyPlan(planOn(await env.readLive(), full), env);
        await expect(outcome).rejects.toThrow(/verification failed[\s\S]*the host is as it was/);
        expect(saved(ns, backend)).toBe(before);
      });

      for (const foreign of [0, 20000]) {
        test(`verification reads only what the plan wrote (${foreign} foreign rules)`, async () => {
          // A fail2ban-like chain of bans in each family, jumped to from nowhere.
          for (const [family, net] of [
            ['ipv4', (i: number) => `10.${i >> 8}.${i & 255}.1/32`],
            ['ipv6', (i: number) => `2001:db8:${i.toString(16)}::1/128`],
          ] as const) {
            if (foreign === 0) break;
            const bans = Array.from(
              { length: foreign },
              (_, i) => `-A BANS -s ${net(i)} -m comment --comment "ban ${i}" -j DROP`,
            );
            ns.exec(
              `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-restore`,
              ['--noflush'],
              ['*filter', ':BANS - [0:0]', ...bans, 'COMMIT', ''].join('\n'),
            );
          }
          const env = environment(ns, backend, full);
          await applyPlan(planOn(await env.readLive(), full), env);
          const changed: Policy = {
            ...ghostAlsoOn(full, 9000),
            ipsets: new Map([...full.ipsets, managedIpset('allowed', 'hash:ip', ['203.0.113.6'])]),
          };
          const { runner, ran } = recording(nsRunner(ns));
          const plan = planOn(await env.readLive(), changed);
          await applyPlan(plan, environment(ns, backend, changed, runner));
          expect(planOn(await env.readLive(), changed).steps).toEqual([]);
          const reads = ran.filter((c) => !c.includes('restore'));
          // No full `ipset save`: sets are read by name (the set and its swap set).
          expect(reads.filter((c) => c === 'ipset save')).toEqual([]);
          expect(reads.filter((c) => c.startsWith('ipset save ')).sort()).toEqual([
            'ipset save moat-allowed',
            'ipset save moat-allowed.swp',
          ]);
          // Tables and chains: `-S` listings on nft, `-save -t filter` on legacy.
          const listings = reads.filter((c) => / -S\b/.test(c) || c.includes('-save'));
          const families = new Set(
            plan.steps.flatMap((s) =>
              'family' in s && !s.kind.endsWith('-set') ? [s.family] : [],
            ),
          );
          if (backend === 'nft' && foreign > 0) {
            // One chain at a time: what the plan changed and the hooks moat jumps from.
            expect(listings.every((c) => /^ip6?tables-nft -t filter -S \S+$/.test(c))).toBe(true);
            expect(listings).toContain('iptables-nft -t filter -S MOAT-INPUT');
            expect(listings).toContain('iptables-nft -t filter -S INPUT');
            expect(listings).not.toContain('iptables-nft -t filter -S DOCKER');
            expect(listings).not.toContain('iptables-nft -t filter -S BANS');
          } else {
            // A small nft table costs less listed whole than chain by chain; on legacy listing
            // one chain costs the whole table: one read of the table per family written.
            const whole =
              backend === 'nft'
                ? /^ip6?tables-nft -t filter -S$/
                : /^ip6?tables-legacy-save -t filter$/;
            expect(listings.every((c) => whole.test(c))).toBe(true);
            expect(listings).toHaveLength(families.size);
          }
        });
      }

      test('a plan made before the host changed is refused as stale', async () => {
        const env = environment(ns, backend, full);
        const plan = planOn(await env.readLive(), full);
        ns.exec(`iptables-${backend}`, ['-N', 'MOAT-SOMEONE']);
        await expect(applyPlan(plan, env)).rejects.toBeInstanceOf(StalePlanError);
      });
    },
  );
}

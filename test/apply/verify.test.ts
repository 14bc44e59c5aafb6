/** What apply reads back to verify: the chains and sets a plan writes, merged into the old state. */
import { describe, expect, test } from '@jest/globals';
import { readAfter, touchedBy, withChains, withIpsets } from '../../src/apply/verify.js';
import { compile } from '../../src/compile/compile.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import { SubprocessError } from '../../src/core/errors.js';
import type { CommandResult, CommandRunner } from '../../src/core/runner.js';
import type { LiveChain, LiveIpset, LiveNetfilter } from '../../src/netfilter/model.js';
import { readFilterChains } from '../../src/netfilter/read.js';
import { diff } from '../../src/plan/diff.js';
import type { Policy } from '../../src/policy/model.js';
import {
  appliedLive,
  container,
  dockerHost,
  editChain,
  group,
  inventory,
  managedIpset,
  policy,
  ruleOf,
  tcp,
} from '../support/builders.js';

const inv = inventory(container('ghost', '172.30.0.3', [{ host: 2368 }]));
const base: Policy = policy(
  [
    group('ghost', {
      ingress: [{ ports: [tcp(2368)], from: [{ kind: 'host' }, { kind: 'ipset', set: 'office' }] }],
    }),
  ],
  { ipsets: new Map([managedIpset('office', 'hash:net', ['198.51.100.0/24'])]) },
);

const planOn = (live: LiveNetfilter, p: Policy) => diff(compile(p, inv, hostFacts(live)), live);
const ok = (stdout: string): CommandResult => ({ stdout, stderr: '', exitCode: 0 });
const fail = (stderr: string, exitCode = 1): CommandResult => ({ stdout: '', stderr, exitCode });

describe('touchedBy', () => {
  test('a fresh apply: every chain it creates, the hooks it jumps from, the sets', () => {
    const host = dockerHost();
    const touched = touchedBy(planOn(host, base), host);
    const desired = compile(base, inv, hostFacts(host));
    for (const family of ['ipv4', 'ipv6'] as const) {
      const want = desired.families[family];
      expect([...touched.chains[family]].sort()).toEqual(
        [...want.chains.map((c) => c.name), ...want.jumps.map((j) => j.hook)].sort(),
      );
    }
    expect(touched.sets).toEqual(['moat-office']);
  });

  test('a set changed: the set and its swap set (gone afterwards), and the chain with the digest', () => {
    const desired = compile(base, inv, hostFacts(dockerHost()));
    const applied = appliedLive(desired, dockerHost());
    const changed: Policy = {
      ...base,
      ipsets: new Map([managedIpset('office', 'hash:net', ['198.51.100.0/25'])]),
    };
    const plan = planOn(applied, changed);
    const touched = touchedBy(plan, applied);
    expect(touched.sets).toEqual(['moat-office', 'moat-office.swp']);
    for (const step of plan.steps) {
      if (step.kind === 'update-chain') expect(touched.chains[step.family]).toContain(step.chain);
    }
  });

  test('a chain changed in one family: that chain, plus the hooks moat jumps from there', () => {
    const desired = compile(base, inv, hostFacts(dockerHost()));
    const applied = appliedLive(desired, dockerHost());
    // Drift in IPv6 only: a foreign rule appended to a moat chain.
    const v6 = applied.rulesets.ipv6.tables.get('filter')!.chains;
    const [name, chain] = [...v6].find(([n]) => n.startsWith('MOAT-'))!;
    const drifted = new Map(v6).set(name, { ...chain, rules: [...chain.rules, ruleOf('-j DROP')] });
    const host: LiveNetfilter = {
      ...applied,
      rulesets: {
        ...applied.rulesets,
        ipv6: {
          family: 'ipv6',
          tables: new Map([['filter', { name: 'filter', chains: drifted }]]),
        },
      },
    };
    const touched = touchedBy(planOn(host, base), host);
    expect(touched.chains.ipv4).toEqual([]);
    const hooks = desired.families.ipv6.jumps.map((j) => j.hook);
    expect([...touched.chains.ipv6].sort()).toEqual([name, ...hooks].sort());
    expect(touched.sets).toEqual([]);
  });
});

describe('withChains / withIpsets', () => {
  const host = dockerHost();
  test('listed chains replace old ones in place, an absent one goes, a new one is appended', () => {
    const fresh: LiveChain = { name: 'DOCKER-USER', rules: [ruleOf('-j DROP')] };
    const created: LiveChain = { name: 'MOAT-X', rules: [] };
    const listed = new Map<string, LiveChain | undefined>([
      ['DOCKER-USER', fresh],
      ['DOCKER', undefined],
      ['MOAT-X', created],
      ['MOAT-GONE', undefined],
    ]);
    const out = withChains(host.rulesets.ipv4, listed);
    const chains = out.tables.get('filter')!.chains;
    expect([...chains.keys()]).toEqual([
      'INPUT',
      'FORWARD',
      'OUTPUT',
      'DOCKER-ISOLATION-STAGE-1',
      'DOCKER-USER',
      'MOAT-X',
    ]);
    expect(chains.get('DOCKER-USER')).toBe(fresh);
    expect(chains.get('FORWARD')).toBe(
      host.rulesets.ipv4.tables.get('filter')!.chains.get('FORWARD'),
    );
    // The input is left alone.
    expect(host.rulesets.ipv4.tables.get('filter')!.chains.has('DOCKER')).toBe(true);
    expect(withChains(host.rulesets.ipv6, new Map())).toBe(host.rulesets.ipv6);
    // A family with no filter table at all gains one.
    const empty = withChains({ family: 'ipv6', tables: new Map() }, new Map([['MOAT-X', created]]));
    expect([...empty.tables.get('filter')!.chains.keys()]).toEqual(['MOAT-X']);
  });

  test('listed sets replace or remove old ones', () => {
    const set = (name: string, members: string[]): LiveIpset => ({
      name,
      type: 'hash:ip',
      family: 'ipv4',
      options: '',
      members,
    });
    const old = new Map([
      ['moat-a', set('moat-a', ['192.0.2.1'])],
      ['other', set('other', [])],
    ]);
    const out = withIpsets(
      old,
      new Map([
        ['moat-a', set('moat-a', ['192.0.2.2'])],
        ['moat-a.swp', undefined],
        ['other', undefined],
      ]),
    );
    expect([...out.keys()]).toEqual(['moat-a']);
    expect(out.get('moat-a')!.members).toEqual(['192.0.2.2']);
    expect(old.get('moat-a')!.members).toEqual(['192.0.2.1']);
  });
});

describe('readFilterChains with a scripted runner', () => {
  const answers = (
    script: Record<string, CommandResult>,
  ): { runner: CommandRunner; ran: string[] } => {
    const ran: string[] = [];
    return {
      ran,
      runner: (command, args) => {
        const line = [command, ...args].join(' ');
        ran.push(line);
        return Promise.resolve(script[line] ?? fail(`unexpected: ${line}`, 99));
      },
    };
  };

  test('nft: one listing per chain; each way iptables-nft says "no such chain" of a moat chain is absent', async () => {
    const { runner, ran } = answers({
      'iptables-nft -t filter -S MOAT-A': ok('-N MOAT-A\n-A MOAT-A -j RETURN\n'),
      'iptables-nft -t filter -S MOAT-B': fail('iptables: No chain/target/match by that name.\n'),
      'iptables-nft -t filter -S MOAT-C': fail(
        "iptables v1.8.9 (nf_tables): chain `MOAT-C' in table `filter' is incompatible, use 'nft' tool.\n",
      ),
      'iptables-nft -t filter -S MOAT-D': fail('iptables: Incompatible with this kernel.\n'),
      'iptables-nft -t filter -S FORWARD': ok('-P FORWARD DROP\n'),
    });
    const chains = await readFilterChains(runner, 'nft', 'ipv4', [
      'MOAT-A',
      'MOAT-B',
      'MOAT-C',
      'MOAT-D',
      'FORWARD',
      'MOAT-A',
    ]);
    // Never the whole table: moat's chains are not base chains, so "incompatible" means absent.
    expect(ran).toHaveLength(5);
    expect(chains.get('MOAT-A')).toEqual({
      name: 'MOAT-A',
      rules: [{ spec: '-j RETURN', target: 'RETURN' }],
    });
    expect([...chains.keys()]).toEqual(['MOAT-A', 'MOAT-B', 'MOAT-C', 'MOAT-D', 'FORWARD']);
    expect(chains.get('MOAT-B')).toBeUndefined();
    expect(chains.get('MOAT-C')).toBeUndefined();
    expect(chains.get('MOAT-D')).toBeUndefined();
    expect(chains.get('FORWARD')).toEqual({ name: 'FORWARD', policy: 'DROP', rules: [] });
  });

  test('nft: "incompatible" for a chain not moat\'s lists the whole table, which tells', async () => {
    const incompatible = fail(
      "iptables v1.8.9 (nf_tables): chain `DOCKER-USER' in table `filter' is incompatible, use 'nft' tool.\n",
    );
    // Missing after all: the whole table lists without it.
    const gone = answers({
      'iptables-nft -t filter -S DOCKER-USER': incompatible,
      'iptables-nft -t filter -S': ok('-P FORWARD ACCEPT\n'),
    });
    const chains = await readFilterChains(gone.runner, 'nft', 'ipv4', ['DOCKER-USER']);
    expect(gone.ran).toEqual([
      'iptables-nft -t filter -S DOCKER-USER',
      'iptables-nft -t filter -S',
    ]);
    expect(chains.get('DOCKER-USER')).toBeUndefined();
    // Written with nft: the table cannot be shown, and that is an error, not an absent chain.
    const nftOnly = answers({
      'iptables-nft -t filter -S DOCKER-USER': incompatible,
      'iptables-nft -t filter -S': fail(
        "iptables v1.8.9 (nf_tables): table `filter' is incompatible, use 'nft' tool.\n",
      ),
    });
    await expect(readFilterChains(nftOnly.runner, 'nft', 'ipv4', ['DOCKER-USER'])).rejects.toThrow(
      /iptables cannot show the ipv4 filter table/,
    );
  });

  test('nft: a small table, or many chains, is listed once instead', async () => {
    const { runner, ran } = answers({
      'iptables-nft -t filter -S': ok('-P FORWARD ACCEPT\n-N MOAT-A\n-A FORWARD -j MOAT-A\n'),
      'iptables-nft -t filter -S FORWARD': ok('-P FORWARD ACCEPT\n-A FORWARD -j MOAT-A\n'),
      'iptables-nft -t filter -S MOAT-A': ok('-N MOAT-A\n'),
      'iptables-nft -t filter -S MOAT-B': fail('iptables: No chain/target/match by that name.\n'),
    });
    const names = ['FORWARD', 'MOAT-A', 'MOAT-B'];
    const chains = await readFilterChains(runner, 'nft', 'ipv4', names, { tableRules: 1000 });
    expect(ran).toEqual(['iptables-nft -t filter -S']);
    expect(chains.get('MOAT-A')).toEqual({ name: 'MOAT-A', rules: [] });
    expect(chains.get('MOAT-B')).toBeUndefined();
    // Three chains of a 50,000-rule table: one by one.
    const alone = await readFilterChains(runner, 'nft', 'ipv4', names, { tableRules: 50000 });
    expect(alone).toEqual(chains);
    expect(ran.slice(1).sort()).toEqual(names.map((n) => `iptables-nft -t filter -S ${n}`).sort());
  });

  test('nft: any other failure is an error, not an absent chain', async () => {
    const { runner } = answers({
      'ip6tables-nft -t filter -S MOAT-A': fail(
        "ip6tables v1.8.9 (nf_tables): chain `OTHER' in table `filter' is incompatible, use 'nft' tool.\n",
      ),
      'ip6tables-nft -t filter -S MOAT-B': fail(
        'Another app is currently holding the xtables lock.',
        4,
      ),
    });
    await expect(readFilterChains(runner, 'nft', 'ipv6', ['MOAT-A'])).rejects.toBeInstanceOf(
      SubprocessError,
    );
    await expect(readFilterChains(runner, 'nft', 'ipv6', ['MOAT-B'])).rejects.toThrow(
      /ip6tables-nft -t filter -S MOAT-B failed \(exit 4\)/,
    );
  });

  test('legacy: the table is read once for all the chains, with save (it takes no lock), others unparsed', async () => {
    const { runner, ran } = answers({
      'cat /proc/net/ip_tables_names': ok('filter\n'),
      'iptables-legacy-save -t filter': ok(
        '*filter\n:FORWARD ACCEPT [0:0]\n:MOAT-A - [0:0]\n:f2b-sshd - [0:0]\n' +
          '-A FORWARD -j MOAT-A\n-A f2b-sshd -m comment --comment "-A MOAT-A" -j RETURN\nCOMMIT\n',
      ),
    });
    const chains = await readFilterChains(runner, 'legacy', 'ipv4', [
      'FORWARD',
      'MOAT-A',
      'MOAT-B',
    ]);
    expect(ran.filter((c) => c.startsWith('ip'))).toEqual(['iptables-legacy-save -t filter']);
    expect(chains.get('FORWARD')!.rules).toHaveLength(1);
    expect(chains.get('MOAT-A')).toEqual({ name: 'MOAT-A', rules: [] });
    expect(chains.get('MOAT-B')).toBeUndefined();
    expect([...chains.keys()]).toEqual(['FORWARD', 'MOAT-A', 'MOAT-B']);
  });

  test('readAfter: a state that is not a full read is listed by the table size given', async () => {
    const ran: string[] = [];
    // Every chain lists as an empty user chain: enough to see what is asked.
    const runner: CommandRunner = (command, args) => {
      ran.push([command, ...args].join(' '));
      const chain = args[3];
      return Promise.resolve(ok(chain === undefined ? '' : `-N ${chain}\n`));
    };
    const desired = compile(base, inv, hostFacts(dockerHost()));
    const applied = appliedLive(desired, dockerHost());
    const flushed = editChain(applied, 'MOAT-FORWARD', (c) => ({ ...c, rules: [] }));
    const plan = diff(desired, flushed);
    expect(plan.steps.map((s) => s.kind)).toEqual(['update-chain']);
    // A small host as read: one listing of the table.
    await readAfter(runner, 'nft', plan, flushed);
    expect(ran).toEqual(['iptables-nft -t filter -S']);
    // The same chains, but the table held 50,000 rules at its last full read: one by one.
    ran.length = 0;
    await readAfter(runner, 'nft', plan, flushed, { ipv4: 50_000 });
    expect(ran.length).toBeGreaterThan(0);
    expect(ran).toContain('iptables-nft -t filter -S MOAT-FORWARD');
    expect(ran).not.toContain('iptables-nft -t filter -S');
  });

  test('readAfter: nothing written, nothing read', async () => {
    const { runner, ran } = answers({});
    const host = dockerHost();
    const empty = planOn(appliedLive(compile(base, inv, hostFacts(host)), host), base);
    expect(empty.steps).toEqual([]);
    expect(await readAfter(runner, 'nft', empty, host)).toEqual(host);
    expect(ran).toEqual([]);
  });
});

/** What watch's look reads of moat's objects, with a scripted runner: how many listings, and what the plan makes of them. */
import { describe, expect, test } from '@jest/globals';
import type { CommandResult, CommandRunner } from '../../src/core/runner.js';
import { readOwned } from '../../src/host/read-owned.js';
import { diff } from '../../src/plan/diff.js';
import { appliedLive, dockerHost, ghostWithOffice } from '../support/builders.js';

const desired = ghostWithOffice();
const ok = (stdout: string): CommandResult => ({ stdout, stderr: '', exitCode: 0 });
const missing = (chain: string): CommandResult => ({
  stdout: '',
  stderr: `iptables v1.8.9 (nf_tables): chain \`${chain}' in table \`filter' is incompatible, use 'nft' tool.\n`,
  exitCode: 1,
});

/** Answers `iptables-nft -t filter -S CHAIN` from `chains` (absent: missing) and records it. */
function host(chains: ReadonlyMap<string, readonly string[]>): {
  runner: CommandRunner;
  ran: string[];
} {
  const ran: string[] = [];
  const runner: CommandRunner = (command, args) => {
    ran.push([command, ...args].join(' '));
    if (command === 'ipset') return Promise.resolve(ok(''));
    const chain = args[3];
    if (chain === undefined)
      return Promise.resolve(ok([...chains.values()].flat().join('\n') + '\n'));
    const lines = chains.get(chain);
    return Promise.resolve(lines === undefined ? missing(chain) : ok(lines.join('\n') + '\n'));
  };
  return { runner, ran };
}

/** The IPv4 filter chains as `iptables -S CHAIN` prints them, from a live state. */
function listings(family: 'ipv4' | 'ipv6', live = appliedLive(desired, dockerHost())) {
  const out = new Map<string, string[]>();
  for (const chain of live.rulesets[family].tables.get('filter')?.chains.values() ?? []) {
    const head =
      chain.policy === undefined ? `-N ${chain.name}` : `-P ${chain.name} ${chain.policy}`;
    out.set(chain.name, [head, ...chain.rules.map((r) => `-A ${chain.name} ${r.spec}`)]);
  }
  return out;
}

describe('readOwned on a big nft table', () => {
  const big = { ipv4: 50_000, ipv6: 50_000 };

  test('everything there: every chain listed once, nothing to repair', async () => {
    const chains = new Map([...listings('ipv4')]);
    const { runner, ran } = host(chains);
    const only4 = {
      ...desired,
      families: { ...desired.families, ipv6: { ...desired.families.ipv6, chains: [], jumps: [] } },
      ipsets: [],
    };
    const live = await readOwned(runner, 'nft', only4, big);
    const names = [...only4.families.ipv4.chains.map((c) => c.name), 'DOCKER-USER', 'INPUT'];
    expect(ran.map((l) => l.split(' ').at(-1)).sort()).toEqual(names.sort());
    expect(diff(only4, live).steps).toEqual([]);
  });

  test('a table rewritten without moat: the hooks and their targets only, and all of it is planned back', async () => {
    const bare = listings('ipv4', dockerHost());
    const { runner, ran } = host(new Map([...bare, ...listings('ipv6', dockerHost())]));
    const live = await readOwned(runner, 'nft', desired, big);
    const v4 = ran.filter((l) => l.startsWith('iptables-nft ')).map((l) => l.split(' ').at(-1));
    expect(v4.sort()).toEqual(['DOCKER-USER', 'INPUT', 'MOAT-FORWARD', 'MOAT-INPUT']);
    expect(ran).not.toContain('iptables-nft -t filter -S');
    const steps = diff(desired, live).steps.filter((s) => 'family' in s && s.family === 'ipv4');
    const created = steps.flatMap((s) => (s.kind === 'create-chain' ? [s.chain] : []));
    expect(created.sort()).toEqual(desired.families.ipv4.chains.map((c) => c.name).sort());
    expect(steps.filter((s) => s.kind === 'add-jump')).toHaveLength(2);
  });

  test('a table smaller than what the walk lists at least: listed whole, once', async () => {
    const { runner, ran } = host(new Map([...listings('ipv4', dockerHost())]));
    const only4 = {
      ...desired,
      families: { ...desired.families, ipv6: { ...desired.families.ipv6, chains: [], jumps: [] } },
      ipsets: [],
    };
    const live = await readOwned(runner, 'nft', only4, { ipv4: 5_000 });
    expect(ran).toEqual(['iptables-nft -t filter -S']);
    expect(diff(only4, live).steps.filter((s) => s.kind === 'create-chain')).toHaveLength(
      only4.families.ipv4.chains.length,
    );
  });
});

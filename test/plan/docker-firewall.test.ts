/**
 * What the plan says about Docker's own firewall: the release and backend it reports, where moat
 * hooks, and the warning for setups that drop what Docker's nftables backend accepted.
 */
import { describe, expect, test } from '@jest/globals';
import { MoatError } from '../../src/core/errors.js';
import type { DockerDaemon } from '../../src/docker/daemon.js';
import type { LiveChain, LiveNetfilter } from '../../src/netfilter/model.js';
import { parseNftJson } from '../../src/netfilter/parse-nft.js';
import { diff } from '../../src/plan/diff.js';
import {
  dockerFirewallWarnings,
  FORWARD_POLICY_DROP,
  withDockerFirewall,
} from '../../src/plan/docker-firewall.js';
import { planFromDocument, renderPlanJson } from '../../src/plan/render-json.js';
import { renderPlanText } from '../../src/plan/render-text.js';
import { compile } from '../../src/compile/compile.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import { dockerHost, inventory, policy } from '../support/builders.js';

const NFTABLES: DockerDaemon = { version: '29.7.2', firewallBackend: 'nftables' };
const IPTABLES: DockerDaemon = { version: '28.5.2', firewallBackend: 'iptables' };

/** `nft -j list ruleset` of a Docker 29 nftables host (trimmed), plus a user's own table. */
const nftJson = (userForwardPolicy: 'accept' | 'drop', iptablesForward = 'accept') =>
  JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: 'ip', name: 'filter', handle: 1 } },
      {
        chain: {
          family: 'ip',
          table: 'filter',
          name: 'FORWARD',
          handle: 1,
          type: 'filter',
          hook: 'forward',
          prio: 0,
          policy: iptablesForward,
        },
      },
      { table: { family: 'ip', name: 'docker-bridges', handle: 2 } },
      {
        chain: {
          family: 'ip',
          table: 'docker-bridges',
          name: 'filter-FORWARD',
          handle: 1,
          type: 'filter',
          hook: 'forward',
          prio: 0,
          policy: 'accept',
        },
      },
      { chain: { family: 'ip', table: 'docker-bridges', name: 'filter-forward-in__docker0' } },
      { rule: { family: 'ip', table: 'docker-bridges', chain: 'filter-FORWARD', expr: [] } },
      { table: { family: 'inet', name: 'filter', handle: 3 } },
      {
        chain: {
          family: 'inet',
          table: 'filter',
          name: 'forward',
          handle: 1,
          type: 'filter',
          hook: 'forward',
          prio: 0,
          policy: userForwardPolicy,
        },
      },
    ],
  });

/** A host whose iptables FORWARD chains have this policy, and no DOCKER-USER (nftables). */
function nftablesHost(forwardPolicy: 'ACCEPT' | 'DROP', nft?: string): LiveNetfilter {
  const base = dockerHost();
  const edit = (family: 'ipv4' | 'ipv6') => {
    const chains = new Map<string, LiveChain>();
    chains.set('INPUT', { name: 'INPUT', policy: 'ACCEPT', rules: [] });
    chains.set('FORWARD', { name: 'FORWARD', policy: forwardPolicy, rules: [] });
    chains.set('OUTPUT', { name: 'OUTPUT', policy: 'ACCEPT', rules: [] });
    return { family, tables: new Map([['filter', { name: 'filter', chains }]]) };
  };
  return {
    ...base,
    rulesets: { ipv4: edit('ipv4'), ipv6: edit('ipv6') },
    ...(nft === undefined ? {} : { nftables: parseNftJson(nft) }),
  };
}

describe('parseNftJson', () => {
  test('tables and base chains, with hook, priority and policy; regular chains are left out', () => {
    const ruleset = parseNftJson(nftJson('drop'));
    expect(ruleset.tables).toEqual([
      { family: 'ip', name: 'filter' },
      { family: 'ip', name: 'docker-bridges' },
      { family: 'inet', name: 'filter' },
    ]);
    expect(ruleset.baseChains.map((c) => `${c.family} ${c.table} ${c.name} ${c.policy}`)).toEqual([
      'ip filter FORWARD accept',
      'ip docker-bridges filter-FORWARD accept',
      'inet filter forward drop',
    ]);
  });

  test('`nft -j list chains` (chains only, no table or rule) reads as the whole ruleset does', () => {
    const whole = JSON.parse(nftJson('drop')) as { nftables: Record<string, unknown>[] };
    const chainsOnly = JSON.stringify({
      nftables: whole.nftables.filter((item) => 'metainfo' in item || 'chain' in item),
    });
    expect(chainsOnly).not.toContain('"table":{');
    expect(parseNftJson(chainsOnly, 'nft -j list chains')).toEqual(parseNftJson(nftJson('drop')));
  });

  test('what is not nft JSON is a located MoatError naming the listing, not a crash', () => {
    for (const bad of ['', '{"nftables": 1}', 'table ip filter {']) {
      expect(() => parseNftJson(bad)).toThrow(MoatError);
      expect(() => parseNftJson(bad, 'nft -j list chains')).toThrow(/^nft -j list chains: /);
    }
  });
});

describe('warnings about what drops the traffic Docker accepted', () => {
  test('nftables backend and an iptables FORWARD policy of DROP: one warning per family', () => {
    const warnings = dockerFirewallWarnings(NFTABLES, nftablesHost('DROP'));
    expect(warnings.map((w) => w.code)).toEqual([FORWARD_POLICY_DROP, FORWARD_POLICY_DROP]);
    expect(warnings[0]?.message).toContain('the iptables FORWARD chain (IPv4) has policy DROP');
    expect(warnings[1]?.message).toContain('ip6tables -P FORWARD ACCEPT');
  });

  test('nothing to say with FORWARD accepting, or under the iptables backend (DROP is Docker own)', () => {
    expect(dockerFirewallWarnings(NFTABLES, nftablesHost('ACCEPT'))).toEqual([]);
    expect(dockerFirewallWarnings(IPTABLES, nftablesHost('DROP'))).toEqual([]);
    expect(dockerFirewallWarnings(undefined, nftablesHost('DROP'))).toEqual([]);
  });

  test("a user's nft forward chain with policy drop is named; Docker's tables never are", () => {
    const warnings = dockerFirewallWarnings(NFTABLES, nftablesHost('ACCEPT', nftJson('drop')));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.message).toContain('inet filter forward (hook forward, policy drop)');
    expect(dockerFirewallWarnings(NFTABLES, nftablesHost('ACCEPT', nftJson('accept')))).toEqual([]);
  });

  test("iptables-nft's own FORWARD, seen in nft too, is reported once (as the iptables chain)", () => {
    const live = nftablesHost('DROP', nftJson('accept', 'drop'));
    const messages = dockerFirewallWarnings(NFTABLES, live).map((w) => w.message);
    expect(messages.filter((m) => m.includes('FORWARD'))).toHaveLength(2); // IPv4 and IPv6
    expect(messages.some((m) => m.includes('ip filter FORWARD'))).toBe(false);
    // With the legacy backend, iptables-save does not show the nft table: nft's word counts.
    const legacy = { ...live, backend: 'legacy' as const };
    expect(
      dockerFirewallWarnings(NFTABLES, legacy)
        .map((w) => w.message)
        .join(),
    ).toContain('ip filter FORWARD');
  });
});

describe('the plan reports Docker and where moat hooks', () => {
  const planOf = (live: LiveNetfilter, daemon?: DockerDaemon) => {
    const plan = diff(compile(policy([]), inventory(), hostFacts(live)), live);
    return withDockerFirewall(plan, daemon, live);
  };

  test('no daemon facts (an older snapshot): the plan is left as it was', () => {
    const live = dockerHost();
    const plan = diff(compile(policy([]), inventory(), hostFacts(live)), live);
    expect(withDockerFirewall(plan, undefined, live)).toBe(plan);
    expect(renderPlanText(plan, { color: false })).not.toContain('Docker');
  });

  test('iptables backend: DOCKER-USER, said in the first line and kept in JSON', () => {
    const plan = planOf(dockerHost(), IPTABLES);
    expect(plan.docker).toEqual({
      version: '28.5.2',
      firewallBackend: 'iptables',
      forwardHooks: { ipv4: 'DOCKER-USER', ipv6: 'DOCKER-USER' },
    });
    expect(renderPlanText(plan, { color: false }).split('\n')[0]).toBe(
      'Docker 28.5.2, firewall backend iptables; moat hooks DOCKER-USER.',
    );
    expect(planFromDocument(renderPlanJson(plan), 'plan.json').plan.docker).toEqual(plan.docker);
  });

  test('nftables backend: FORWARD, no DOCKER-USER; the warning is in the plan', () => {
    const plan = planOf(nftablesHost('DROP'), NFTABLES);
    const text = renderPlanText(plan, { color: false });
    expect(text.split('\n')[0]).toBe(
      'Docker 29.7.2, firewall backend nftables; moat hooks FORWARD (no DOCKER-USER).',
    );
    expect(text).toContain(
      'Warnings:\n  ! Docker uses its nftables firewall backend, and the iptables FORWARD',
    );
    const doc = JSON.parse(renderPlanJson(plan)) as Record<string, unknown>;
    expect(doc.docker).toEqual({
      version: '29.7.2',
      firewall_backend: 'nftables',
      forward_hooks: { ipv4: 'FORWARD', ipv6: 'FORWARD' },
    });
  });
});

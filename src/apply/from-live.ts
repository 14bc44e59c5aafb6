/**
 * What moat owned on the host at one moment, expressed as a desired state, so the same diff
 * and renderer that apply a plan can also put that moment back (rollback).
 */
import type { DesiredFamily, DesiredIpset, DesiredState, OwnedRule } from '../compile/model.js';
import { isOwnedChain, isOwnedIpset, shortHash } from '../core/ownership.js';
import { liveDigest } from '../plan/diff.js';
import type { Family, IpsetType } from '../policy/model.js';
import type { LiveChain, LiveNetfilter, LiveRule } from '../netfilter/model.js';

function verbatim(chain: string, rule: LiveRule): OwnedRule {
  return {
    chain,
    spec: rule.spec,
    line: rule.spec,
    id: rule.moatId ?? `foreign-${shortHash(rule.spec)}`,
    origins: [],
  };
}

function familyFromLive(live: LiveNetfilter, family: Family): DesiredFamily {
  const chains = live.rulesets[family].tables.get('filter')?.chains ?? new Map<string, LiveChain>();
  const owned: DesiredFamily['chains'][number][] = [];
  const jumps: DesiredFamily['jumps'][number][] = [];
  for (const chain of chains.values()) {
    if (isOwnedChain(chain.name)) {
      owned.push({ name: chain.name, rules: chain.rules.map((r) => verbatim(chain.name, r)) });
      continue;
    }
    const first = chain.rules[0];
    if (first?.moatId !== undefined)
      jumps.push({ hook: chain.name, rule: verbatim(chain.name, first) });
  }
  return { family, chains: owned, jumps, digest: liveDigest(live.rulesets[family]) ?? '' };
}

export function desiredFromLive(live: LiveNetfilter): DesiredState {
  const ipsets: DesiredIpset[] = [...live.ipsets.values()]
    .filter((s) => isOwnedIpset(s.name) && (s.type === 'hash:ip' || s.type === 'hash:net'))
    .map((s) => ({
      name: s.name,
      type: s.type as IpsetType,
      family: s.family,
      members: [...s.members].sort(),
    }));
  return {
    families: { ipv4: familyFromLive(live, 'ipv4'), ipv6: familyFromLive(live, 'ipv6') },
    ipsets,
    publications: [],
    egress: [],
    glossary: { ipsets: {}, addresses: {} },
    warnings: [],
  };
}

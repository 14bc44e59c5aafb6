/**
 * Diff: desired state × live host → ordered plan. Rules are identified by their `moat:<id>`
 * comments, never by re-parsed text, because iptables rewrites rules on the way back.
 */
import type { DesiredFamily, DesiredState } from '../compile/model.js';
import {
  DIGEST_PREFIX,
  FORWARD_CHAIN,
  isOwnedChain,
  isOwnedIpset,
  shortHash,
} from '../core/ownership.js';
import { FAMILIES, type Family } from '../policy/model.js';
import type {
  LiveChain,
  LiveIpset,
  LiveNetfilter,
  LiveRule,
  LiveRuleset,
} from '../netfilter/model.js';
import {
  PLAN_FORMAT_VERSION,
  type Plan,
  type PlanStep,
  type ChainEdits,
  type PlanSummary,
  type PlannedRule,
  type PortReach,
  type StepReason,
} from './model.js';
import { desiredView, liveView, reachOn, type PathPacket } from './reach.js';

const DIGEST_PATTERN = new RegExp(`${DIGEST_PREFIX}([0-9a-f]+)`);

function filterChains(ruleset: LiveRuleset): ReadonlyMap<string, LiveChain> {
  return ruleset.tables.get('filter')?.chains ?? new Map<string, LiveChain>();
}

/** A rule moat put somewhere: its comment, or a jump into one of its chains. */
export function isMoatRule(rule: LiveRule): boolean {
  return rule.moatId !== undefined || (rule.target !== undefined && isOwnedChain(rule.target));
}

/** The digest moat recorded in this family when it last applied, if any. */
export function liveDigest(ruleset: LiveRuleset): string | undefined {
  const forward = filterChains(ruleset).get(FORWARD_CHAIN);
  for (const rule of forward?.rules ?? []) {
    const match = DIGEST_PATTERN.exec(rule.spec);
    if (match?.[1] !== undefined) return match[1];
  }
  return undefined;
}

function holdsMoatObjects(ruleset: LiveRuleset): boolean {
  for (const chain of filterChains(ruleset).values()) {
    if (isOwnedChain(chain.name) || chain.rules.some(isMoatRule)) return true;
  }
  return false;
}

/** A digest of everything moat owns on the host, so a saved plan can tell it went stale. */
export function fingerprint(live: LiveNetfilter): string {
  const parts: string[] = [];
  for (const family of FAMILIES) {
    for (const chain of filterChains(live.rulesets[family]).values()) {
      const owned = isOwnedChain(chain.name);
      chain.rules.forEach((rule, index) => {
        if (owned || isMoatRule(rule)) parts.push(`${family} ${chain.name} ${index} ${rule.spec}`);
      });
      if (owned) parts.push(`${family} chain ${chain.name}`);
    }
  }
  for (const set of [...live.ipsets.values()].filter((s) => isOwnedIpset(s.name))) {
    parts.push(`set ${set.name} ${set.type} ${set.family} ${[...set.members].sort().join(',')}`);
  }
  return shortHash(parts.join('\n'), 16);
}

function planned(rules: readonly PlannedRule[]): PlannedRule[] {
  return rules.map((r) => ({ id: r.id, spec: r.spec, line: r.line }));
}

function sameOrder(
  a: readonly (string | undefined)[],
  b: readonly (string | undefined)[],
): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function diffFamily(desired: DesiredFamily, live: LiveRuleset, reason: StepReason): PlanStep[] {
  const family = desired.family;
  const chains = filterChains(live);
  const steps: PlanStep[] = [];
  const wanted = new Set(desired.chains.map((c) => c.name));

  for (const chain of desired.chains) {
    const current = chains.get(chain.name);
    if (current === undefined) {
      steps.push({
        kind: 'create-chain',
        reason,
        family,
        chain: chain.name,
        rules: planned(chain.rules),
      });
      continue;
    }
    const liveIds = current.rules.map((r) => r.moatId);
    const wantIds = chain.rules.map((r) => r.id);
    if (sameOrder(liveIds, wantIds)) continue;
    const wantSet = new Set(wantIds);
    // Keep the first live copy of each wanted rule; every other live rule goes.
    const seen = new Set<string>();
    const kept: string[] = [];
    const deleted: number[] = [];
    current.rules.forEach((rule, index) => {
      const id = rule.moatId;
      if (id !== undefined && wantSet.has(id) && !seen.has(id)) {
        seen.add(id);
        kept.push(id);
      } else {
        deleted.push(index + 1);
      }
    });
    const add = chain.rules.filter((r) => !seen.has(r.id));
    const remove = deleted.map((position) => current.rules[position - 1]?.spec ?? '');
    const inOrder = sameOrder(
      kept,
      wantIds.filter((id) => seen.has(id)),
    );
    const edits: ChainEdits | undefined = inOrder
      ? {
          delete: [...deleted].reverse(),
          insert: chain.rules.flatMap((rule, index) =>
            seen.has(rule.id) ? [] : [{ position: index + 1, rule: planned([rule])[0] ?? rule }],
          ),
        }
      : undefined;
    steps.push({
      kind: 'update-chain',
      reason,
      family,
      chain: chain.name,
      rules: planned(chain.rules),
      add: planned(add),
      remove,
      reordered: !inOrder,
      ...(edits === undefined ? {} : { edits }),
    });
  }

  // Jumps: exactly one moat rule in each hook chain, at its top.
  const hooks = new Set(desired.jumps.map((j) => j.hook));
  for (const jump of desired.jumps) {
    const hookRules = chains.get(jump.hook)?.rules ?? [];
    const ours = hookRules.filter(isMoatRule);
    const first = hookRules[0];
    if (ours.length === 1 && first?.moatId === jump.rule.id) continue;
    steps.push({
      kind: ours.length === 0 ? 'add-jump' : 'move-jump',
      reason,
      family,
      hook: jump.hook,
      rule: planned([jump.rule])[0] ?? jump.rule,
      remove: ours.map((r) => r.spec),
    });
  }
  // moat's rules in chains it does not own and no longer hooks.
  for (const chain of chains.values()) {
    if (isOwnedChain(chain.name) || hooks.has(chain.name)) continue;
    const ours = chain.rules.filter(isMoatRule);
    if (ours.length > 0) {
      steps.push({
        kind: 'remove-jump',
        reason,
        family,
        hook: chain.name,
        remove: ours.map((r) => r.spec),
      });
    }
  }
  for (const chain of chains.values()) {
    if (isOwnedChain(chain.name) && !wanted.has(chain.name)) {
      steps.push({
        kind: 'delete-chain',
        reason,
        family,
        chain: chain.name,
        remove: chain.rules.map((r) => r.spec),
      });
    }
  }
  return steps;
}

function diffIpsets(
  desired: DesiredState,
  live: ReadonlyMap<string, LiveIpset>,
  reason: StepReason,
): {
  before: PlanStep[];
  after: PlanStep[];
} {
  const before: PlanStep[] = [];
  const after: PlanStep[] = [];
  for (const set of desired.ipsets) {
    const current = live.get(set.name);
    if (current === undefined) {
      before.push({
        kind: 'create-set',
        reason,
        set: set.name,
        type: set.type,
        family: set.family,
        members: set.members,
      });
      continue;
    }
    const have = new Set(current.members);
    const want = new Set(set.members);
    const add = set.members.filter((m) => !have.has(m));
    const remove = current.members.filter((m) => !want.has(m));
    const retyped = current.type !== set.type || current.family !== set.family;
    if (add.length === 0 && remove.length === 0 && !retyped) continue;
    before.push({
      kind: 'update-set',
      reason,
      set: set.name,
      type: set.type,
      family: set.family,
      members: set.members,
      add,
      remove,
    });
  }
  const wanted = new Set(desired.ipsets.map((s) => s.name));
  for (const name of [...live.keys()].sort()) {
    if (isOwnedIpset(name) && !wanted.has(name))
      after.push({ kind: 'destroy-set', reason, set: name });
  }
  return { before, after };
}

function summarise(steps: readonly PlanStep[]): PlanSummary {
  let add = 0;
  let change = 0;
  let destroy = 0;
  for (const step of steps) {
    switch (step.kind) {
      case 'create-set':
      case 'create-chain':
      case 'add-jump':
        add += 1;
        break;
      case 'update-set':
      case 'update-chain':
      case 'move-jump':
        change += 1;
        break;
      case 'destroy-set':
      case 'delete-chain':
      case 'remove-jump':
        destroy += 1;
        break;
    }
  }
  return { add, change, destroy };
}

/**
 * Who may reach each published port on each path, by moat's rules before and after. A family
 * the plan leaves as it is holds the same rules before and after: its "was" is its "now".
 */
function exposures(
  desired: DesiredState,
  live: LiveNetfilter,
  unchanged: ReadonlySet<Family>,
): PortReach[] {
  const now = {
    ipv4: desiredView(desired.families.ipv4),
    ipv6: desiredView(desired.families.ipv6),
  };
  const was = { ipv4: liveView(live.rulesets.ipv4), ipv6: liveView(live.rulesets.ipv6) };
  return desired.publications.map((p) => ({
    container: p.container,
    groups: p.groups,
    protocol: p.protocol,
    via: p.via,
    port: p.port,
    containerPort: p.containerPort,
    ...(p.hostIps === undefined ? {} : { hostIps: p.hostIps }),
    origins: p.origins,
    paths: p.paths.map((path) => {
      const packet: PathPacket = {
        family: path.family,
        path: path.path,
        protocol: p.protocol,
        port: path.path === 'direct' ? p.containerPort : p.port,
        containerPort: p.containerPort,
        ...(path.outInterface === undefined ? {} : { outInterface: path.outInterface }),
        ...(path.destination === undefined ? {} : { destination: path.destination }),
      };
      const after = reachOn(now[path.family], packet);
      return {
        ...path,
        now: after,
        was: unchanged.has(path.family) ? after : reachOn(was[path.family], packet),
      };
    }),
  }));
}

export function diff(desired: DesiredState, live: LiveNetfilter): Plan {
  const digests = {} as Record<Family, string>;
  const familySteps: PlanStep[] = [];
  let recordedMatches = 0;
  let recordedDigests = 0;
  for (const family of FAMILIES) {
    const want = desired.families[family];
    digests[family] = want.digest;
    const recorded = liveDigest(live.rulesets[family]);
    // The host says it holds what we want, yet differs: someone changed it since. So does a
    // host whose marker is gone while other moat objects remain (a chain was flushed). A
    // family that should hold nothing and records nothing counts as matching.
    const matches =
      want.chains.length === 0
        ? recorded === undefined
        : recorded === want.digest ||
          (recorded === undefined && holdsMoatObjects(live.rulesets[family]));
    const reason: StepReason = matches ? 'drift' : 'policy';
    const steps = diffFamily(want, live.rulesets[family], reason);
    if (matches) recordedMatches += 1;
    if (recorded !== undefined && recorded === want.digest) recordedDigests += 1;
    familySteps.push(...steps);
  }
  // The digests cover the ipsets too: if every family's matches, and at least one family
  // records it (moat applied this policy before), a set that differs drifted.
  const sets = diffIpsets(
    desired,
    live.ipsets,
    recordedMatches === FAMILIES.length && recordedDigests > 0 ? 'drift' : 'policy',
  );
  const steps = [...sets.before, ...familySteps, ...sets.after];
  return {
    formatVersion: PLAN_FORMAT_VERSION,
    fingerprint: fingerprint(live),
    steps,
    summary: summarise(steps),
    exposures: exposures(
      desired,
      live,
      new Set(FAMILIES.filter((f) => !steps.some((step) => 'family' in step && step.family === f))),
    ),
    egress: desired.egress,
    glossary: desired.glossary,
    warnings: desired.warnings,
    digests,
  };
}

/**
 * What moat's rules dropped, per policy rule: the kernel's counters of moat's DROP rules, each
 * mapped through its `moat:<id>` to the compiled rule and so to the policy rules (origins) that
 * made it. A DROP made by several rules (ports that rules of two groups name, whose sources add
 * up) counts under each of them; the totals count every packet once. Pure.
 */
import type { DesiredState, OwnedRule } from '../compile/model.js';
import type { RuleCounters } from '../netfilter/parse-counters.js';
import { FAMILIES, type Family } from '../policy/model.js';

export interface DropCount {
  readonly packets: number;
  readonly bytes: number;
}

export type Direction = 'ingress' | 'egress';

/** Drops of one policy rule (or one of moat's own rules) in one family. */
export interface RuleDrops extends DropCount {
  /** The group, `(defaults)` for the defaults, `(moat)` for moat's own rules. */
  readonly group: string;
  readonly direction: Direction;
  /** The policy path as text: `containers.ghost.ingress[0]`, `defaults.ingress`. */
  readonly rule: string;
  /** The policy path; empty for moat's own rules. */
  readonly path: readonly (string | number)[];
  readonly family: Family;
}

export interface DropReport {
  /** Every rule that can drop, counted or not, in policy order then family. */
  readonly rules: readonly RuleDrops[];
  /** Every packet moat's DROP rules dropped, once. */
  readonly totals: Readonly<Record<Family, DropCount>>;
  /** Drops of live DROP rules the current policy does not make (a change not applied yet). */
  readonly unattributed: Readonly<Record<Family, DropCount>>;
}

export const DEFAULTS_GROUP = '(defaults)';
export const MOAT_GROUP = '(moat)';
const ZERO: DropCount = { packets: 0, bytes: 0 };

export function isDropRule(rule: { readonly spec: string }): boolean {
  return rule.spec.endsWith('-j DROP');
}

/** `containers.ghost.ingress[0]`. */
export function pathLabel(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** The group and direction a policy path belongs to. */
export function originPlace(path: readonly (string | number)[]): {
  group: string;
  direction: Direction;
} {
  if (path[0] === 'containers')
    return { group: String(path[1]), direction: path[2] === 'egress' ? 'egress' : 'ingress' };
  return { group: DEFAULTS_GROUP, direction: path[1] === 'egress' ? 'egress' : 'ingress' };
}

/** moat's own DROP (no policy rule made it): what it is for. */
function structuralLabel(rule: OwnedRule): string {
  return rule.spec.includes('--ctorigdst ') ? 'published-on-loopback' : rule.chain;
}

function add(a: DropCount, b: DropCount): DropCount {
  return { packets: a.packets + b.packets, bytes: a.bytes + b.bytes };
}

/** Keys the counters by chain and id. */
function countersByRule(counters: readonly RuleCounters[]): Map<string, DropCount> {
  const out = new Map<string, DropCount>();
  for (const c of counters) {
    const key = `${c.chain} ${c.id}`;
    out.set(key, add(out.get(key) ?? ZERO, c));
  }
  return out;
}

/** The chains holding moat's DROP rules in one family: the ones worth reading counters of. */
export function dropChains(desired: DesiredState, family: Family): string[] {
  return desired.families[family].chains.filter((c) => c.rules.some(isDropRule)).map((c) => c.name);
}

/** Groups first, then the defaults, then moat's own rules. */
function rowOrder(a: RuleDrops, b: RuleDrops): number {
  const rank = (r: RuleDrops): number =>
    r.group === DEFAULTS_GROUP ? 1 : r.group === MOAT_GROUP ? 2 : 0;
  return rank(a) - rank(b);
}

/** By path, numbers as numbers (`ingress[2]` before `ingress[10]`); moat's own by label. */
function comparePaths(a: RuleDrops, b: RuleDrops): number {
  for (let i = 0; i < Math.max(a.path.length, b.path.length); i++) {
    const x = a.path[i];
    const y = b.path[i];
    if (x === y) continue;
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x).localeCompare(String(y));
  }
  return a.rule.localeCompare(b.rule);
}

export function dropReport(
  desired: DesiredState,
  counters: Readonly<Record<Family, readonly RuleCounters[]>>,
): DropReport {
  const rows = new Map<string, RuleDrops>();
  const totals = { ipv4: ZERO, ipv6: ZERO };
  const unattributed = { ipv4: ZERO, ipv6: ZERO };
  for (const family of FAMILIES) {
    const counted = countersByRule(counters[family]);
    const known = new Set<string>();
    for (const chain of desired.families[family].chains) {
      for (const rule of chain.rules.filter(isDropRule)) {
        const key = `${chain.name} ${rule.id}`;
        known.add(key);
        const count = counted.get(key) ?? ZERO;
        totals[family] = add(totals[family], count);
        const places =
          rule.origins.length === 0
            ? [
                {
                  group: MOAT_GROUP,
                  direction: 'ingress' as const,
                  rule: structuralLabel(rule),
                  path: [],
                },
              ]
            : rule.origins.map((o) => ({
                ...originPlace(o.path),
                rule: pathLabel(o.path),
                path: o.path,
              }));
        for (const place of places) {
          const rowKey = `${family} ${place.rule}`;
          const row = rows.get(rowKey);
          rows.set(rowKey, { ...place, family, ...add(row ?? ZERO, count) });
        }
      }
    }
    for (const c of counters[family]) {
      if (c.target !== 'DROP' || known.has(`${c.chain} ${c.id}`)) continue;
      unattributed[family] = add(unattributed[family], c);
      totals[family] = add(totals[family], c);
    }
  }
  const ordered = [...rows.values()].sort(
    (a, b) => rowOrder(a, b) || comparePaths(a, b) || a.family.localeCompare(b.family),
  );
  return { rules: ordered, totals, unattributed };
}

/**
 * An Explanation as a person reads it (verdict per family, then each probe's trail, moat's
 * rules with the policy line that made them) and as a versioned JSON document. Pure.
 */
import type { Family } from '../policy/model.js';
import type {
  Explanation,
  Probe,
  ProbeEnd,
  RuleRef,
  Summary,
  TrailStep,
  Unmodelled,
} from './model.js';

export const EXPLAIN_FORMAT_VERSION = 1;

/** Where in the policy a moat rule comes from. */
export interface PolicyOrigin {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** `ghost ingress from host`, `webapp egress deny 192.0.2.0/24`. */
  readonly what: string;
}

/** moat id → the policy position that made the rule (none for rules of an older policy). */
export type OriginLookup = (moatId: string) => PolicyOrigin | undefined;

const NO_ORIGINS: OriginLookup = () => undefined;

const FAMILY_LABEL: Readonly<Record<Family, string>> = { ipv4: 'IPv4', ipv6: 'IPv6' };

const ANSI = {
  red: '\u001b[31m',
  green: '\u001b[32m',
  yellow: '\u001b[33m',
  dim: '\u001b[2m',
  reset: '\u001b[0m',
};

function paintVerdict(verdict: Summary, color: boolean): string {
  if (!color) return verdict;
  const code =
    verdict === 'reachable' ? ANSI.green : verdict === 'blocked' ? ANSI.red : ANSI.yellow;
  return `${code}${verdict}${ANSI.reset}`;
}

/** `the host [2001:db8::1]:2368/tcp`, `198.51.100.7:2368/udp`. */
export function endpointText(end: ProbeEnd, protocol: string): string {
  const host = end.address.includes(':') ? `[${end.address}]` : end.address;
  const where = end.port === undefined ? end.address : `${host}:${end.port}/${protocol}`;
  return end.label === '' ? where : `${end.label} ${where}`;
}

function ruleLine(rule: RuleRef): string {
  return `${rule.table} ${rule.chain} #${rule.position}: ${rule.spec}`;
}

function originText(origin: PolicyOrigin | undefined): string {
  return origin === undefined
    ? ''
    : `  [${origin.file}:${origin.line}:${origin.column} ${origin.what}]`;
}

/** Policy ACCEPTs of tables nothing matched in are noise; policies that decide are not. */
function shown(step: TrailStep): boolean {
  return step.kind !== 'policy' || step.policy !== 'ACCEPT' || step.table === 'filter';
}

export function renderTrail(
  trail: readonly TrailStep[],
  origins: OriginLookup,
  indent: string,
): string[] {
  return trail.filter(shown).map((step) => {
    switch (step.kind) {
      case 'note':
        return `${indent}${step.text}`;
      case 'policy':
        return `${indent}${step.table} ${step.chain}: policy ${step.policy}`;
      case 'rule': {
        const assumed =
          step.assumed === undefined ? '' : ` (assumed ${step.assumed}: not modelled)`;
        const origin = step.rule.moatId === undefined ? undefined : origins(step.rule.moatId);
        return `${indent}${ruleLine(step.rule)}  → ${step.effect}${assumed}${originText(origin)}`;
      }
    }
  });
}

function unmodelledLine(u: Unmodelled): string {
  return u.rule === undefined ? u.why : `${ruleLine(u.rule)}: ${u.why}`;
}

function probeLines(
  probe: Probe,
  origins: OriginLookup,
  color: boolean,
  trails: boolean,
): string[] {
  const to = endpointText(probe.to, probe.protocol);
  const lines = [
    `  from ${probe.from.label} to ${to}: ${paintVerdict(probe.outcome.verdict, color)}, ${probe.outcome.reason}`,
  ];
  if (trails) lines.push(...renderTrail(probe.outcome.trail, origins, '    '));
  const unmodelled = probe.outcome.unmodelled;
  if (unmodelled.length > 0) {
    const head =
      probe.outcome.verdict === 'unknown'
        ? '    not modelled, so unknown:'
        : '    not modelled, but the verdict is the same either way:';
    lines.push(head, ...unmodelled.map((u) => `      ${unmodelledLine(u)}`));
  }
  return lines;
}

export interface RenderOptions {
  readonly color?: boolean;
  readonly origins?: OriginLookup;
  /** Print each probe's trail (default true). */
  readonly trails?: boolean;
}

export function renderExplanationText(
  explanation: Explanation,
  options: RenderOptions = {},
): string {
  const origins = options.origins ?? NO_ORIGINS;
  const color = options.color === true;
  const lines = [`from ${explanation.from} to ${explanation.to}`];
  for (const note of explanation.notes) lines.push(`  ${note}`);
  for (const answer of explanation.answers) {
    lines.push(
      '',
      `${FAMILY_LABEL[answer.family]}: ${paintVerdict(answer.verdict, color)}${answer.note === undefined ? '' : ` (${answer.note})`}`,
    );
    for (const probe of answer.probes)
      lines.push(...probeLines(probe, origins, color, options.trails !== false));
  }
  return `${lines.join('\n')}\n`;
}

function stepJson(step: TrailStep, origins: OriginLookup): unknown {
  switch (step.kind) {
    case 'note':
      return { kind: 'note', text: step.text };
    case 'policy':
      return { kind: 'policy', table: step.table, chain: step.chain, policy: step.policy };
    case 'rule': {
      const origin = step.rule.moatId === undefined ? undefined : origins(step.rule.moatId);
      return {
        kind: 'rule',
        table: step.rule.table,
        chain: step.rule.chain,
        position: step.rule.position,
        rule: step.rule.spec,
        effect: step.effect,
        ...(step.rule.moatId === undefined ? {} : { moat_id: step.rule.moatId }),
        ...(origin === undefined ? {} : { policy: origin }),
        ...(step.assumed === undefined ? {} : { assumed: step.assumed }),
      };
    }
  }
}

function unmodelledJson(u: Unmodelled): unknown {
  return u.rule === undefined
    ? { why: u.why }
    : {
        why: u.why,
        table: u.rule.table,
        chain: u.rule.chain,
        position: u.rule.position,
        rule: u.rule.spec,
      };
}

export function explanationDocument(
  explanation: Explanation,
  origins: OriginLookup = NO_ORIGINS,
): unknown {
  return {
    format_version: EXPLAIN_FORMAT_VERSION,
    from: explanation.from,
    to: explanation.to,
    notes: explanation.notes,
    answers: explanation.answers.map((a) => ({
      family: a.family,
      verdict: a.verdict,
      ...(a.note === undefined ? {} : { note: a.note }),
      probes: a.probes.map((p) => ({
        from: p.from,
        to: p.to,
        protocol: p.protocol,
        verdict: p.outcome.verdict,
        reason: p.outcome.reason,
        trail: p.outcome.trail.map((s) => stepJson(s, origins)),
        unmodelled: p.outcome.unmodelled.map(unmodelledJson),
      })),
    })),
  };
}

/** The plan for people, modelled on `terraform plan`: drift first, then exposure, then rules. */
import { DIGEST_PREFIX, EGRESS_CHAIN, EGRESS_GROUP_CHAIN_PREFIX } from '../core/ownership.js';
import { sameReach } from './reach.js';
import { egressWords, portName, portReachWords } from './words.js';
import { plural } from '../core/words.js';
import type { Plan, PlanStep } from './model.js';

export interface TextOptions {
  readonly color: boolean;
}

const CODES = { green: 32, yellow: 33, red: 31, bold: 1, dim: 2 } as const;
type Tint = keyof typeof CODES;

function painter(color: boolean): (tint: Tint, text: string) => string {
  return color ? (tint, text) => `\u001b[${CODES[tint]}m${text}\u001b[0m` : (_tint, text) => text;
}

/** moat's bookkeeping marker is not a rule a reviewer needs to read. */
function shown(specs: readonly string[]): string[] {
  return specs.filter((spec) => !spec.includes(DIGEST_PREFIX));
}

function familyLabel(step: PlanStep): string {
  return 'family' in step ? `${step.family === 'ipv4' ? 'IPv4' : 'IPv6'} ` : '';
}

function stepLines(step: PlanStep, paint: ReturnType<typeof painter>): string[] {
  const add = (t: string): string => paint('green', `+ ${t}`);
  const del = (t: string): string => paint('red', `- ${t}`);
  const chg = (t: string): string => paint('yellow', `~ ${t}`);
  const fam = familyLabel(step);
  switch (step.kind) {
    case 'create-chain':
      return [
        add(`${fam}chain ${step.chain}`),
        ...shown(step.rules.map((r) => r.spec)).map(
          (spec) => `    ${add(`-A ${step.chain} ${spec}`)}`,
        ),
      ];
    case 'update-chain': {
      const head = chg(`${fam}chain ${step.chain}${step.reordered ? ' (rules out of order)' : ''}`);
      return [
        head,
        ...shown(step.remove).map((spec) => `    ${del(`-A ${step.chain} ${spec}`)}`),
        ...shown(step.add.map((r) => r.spec)).map(
          (spec) => `    ${add(`-A ${step.chain} ${spec}`)}`,
        ),
      ];
    }
    case 'delete-chain':
      return [
        del(`${fam}chain ${step.chain}`),
        ...shown(step.remove).map((spec) => `    ${del(`-A ${step.chain} ${spec}`)}`),
      ];
    case 'add-jump':
      return [add(`${fam}jump at the top of ${step.hook}: ${step.rule.spec}`)];
    case 'move-jump':
      return [
        chg(`${fam}jump back to the top of ${step.hook}: ${step.rule.spec}`),
        ...step.remove.map((spec) => `    ${del(`-A ${step.hook} ${spec}`)}`),
      ];
    case 'remove-jump':
      return [
        del(`${fam}moat's rules in ${step.hook}`),
        ...step.remove.map((spec) => `    ${del(`-A ${step.hook} ${spec}`)}`),
      ];
    case 'create-set':
      return [
        add(
          `ipset ${step.set} (${step.type}, ${step.family}, ${plural(step.members.length, 'member')})`,
        ),
        ...step.members.map((m) => `    ${add(m)}`),
      ];
    case 'update-set':
      return [
        chg(`ipset ${step.set}`),
        ...step.remove.map((m) => `    ${del(m)}`),
        ...step.add.map((m) => `    ${add(m)}`),
      ];
    case 'destroy-set':
      return [del(`ipset ${step.set}`)];
  }
}

/** Published ports whose reachability the plan changes, compared as data. */
function exposureLines(plan: Plan): string[] {
  const lines: string[] = [];
  for (const port of plan.exposures) {
    if (port.paths.every((p) => sameReach(p.now, p.was))) continue;
    const now = portReachWords(port, 'now', plan.glossary);
    const was = portReachWords(port, 'was', plan.glossary);
    lines.push(`  ${portName(port)}: reachable from ${now} (was: ${was})`);
  }
  return lines;
}

/** Egress in words, for the groups whose chains this plan touches. */
function egressLines(plan: Plan): string[] {
  const touched = new Set<string>();
  for (const step of plan.steps) {
    if ('chain' in step) touched.add(step.chain);
    const rules = step.kind === 'update-chain' ? step.add.map((r) => r.spec) : [];
    const specs = [
      ...rules,
      ...(step.kind === 'create-chain' ? step.rules.map((r) => r.spec) : []),
      ...('remove' in step ? step.remove : []),
    ];
    for (const spec of specs) {
      const target = new RegExp(`-[jg] (${EGRESS_GROUP_CHAIN_PREFIX}\\S+)`).exec(spec)?.[1];
      if (target !== undefined) touched.add(target);
    }
  }
  const dispatch = touched.has(EGRESS_CHAIN);
  const lines = plan.egress
    .filter((e) => dispatch || (e.chain !== undefined && touched.has(e.chain)))
    .map((e) => {
      const who = e.containers.length === 0 ? 'no running container' : e.containers.join(', ');
      return `  ${e.group} egress (${who}): ${egressWords(e)}`;
    });
  const wanted = new Set(plan.egress.map((e) => e.chain));
  for (const step of plan.steps) {
    if (
      step.kind === 'delete-chain' &&
      step.chain.startsWith(EGRESS_GROUP_CHAIN_PREFIX) &&
      !wanted.has(step.chain)
    ) {
      lines.push(
        `  egress limits of ${step.chain} removed: its containers may reach what defaults.egress allows`,
      );
    }
  }
  return lines;
}

export function renderPlanText(plan: Plan, options: TextOptions): string {
  const paint = painter(options.color);
  const out: string[] = [];
  const drift = plan.steps.filter((s) => s.reason === 'drift');
  const change = plan.steps.filter((s) => s.reason === 'policy');
  if (drift.length > 0) {
    out.push(paint('bold', 'Changed outside moat (drift); moat will put it back:'));
    for (const step of drift) out.push(...stepLines(step, paint).map((l) => `  ${l}`));
    out.push('');
  }
  const exposure = exposureLines(plan);
  if (exposure.length > 0) {
    out.push(paint('bold', 'Published ports:'), ...exposure, '');
  }
  const egress = egressLines(plan);
  if (egress.length > 0) {
    out.push(paint('bold', 'Egress:'), ...egress, '');
  }
  if (change.length > 0) {
    out.push(paint('bold', 'moat will:'));
    for (const step of change) out.push(...stepLines(step, paint).map((l) => `  ${l}`));
    out.push('');
  }
  const notes = plan.warnings.filter((w) => w.level === 'note');
  const warnings = plan.warnings.filter((w) => w.level !== 'note');
  if (notes.length > 0) {
    out.push(paint('bold', 'Notes:'));
    for (const w of notes) out.push(`  ${paint('dim', '·')} ${w.message}`);
    out.push('');
  }
  if (warnings.length > 0) {
    out.push(paint('bold', 'Warnings:'));
    for (const w of warnings) out.push(`  ${paint('yellow', '!')} ${w.message}`);
    out.push('');
  }
  const { add, change: changed, destroy } = plan.summary;
  out.push(
    plan.steps.length === 0
      ? 'No changes. The host matches firewall.yaml.'
      : `Plan: ${add} to add, ${changed} to change, ${destroy} to destroy.`,
  );
  return out.join('\n') + '\n';
}

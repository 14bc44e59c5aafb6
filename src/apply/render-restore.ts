/**
 * Render a plan as restore input: one `iptables-restore --noflush` transaction per family and
 * the `ipset restore` scripts that run before and after it. Pure.
 *
 * In a --noflush restore, `:CHAIN - [0:0]` creates a chain or empties an existing one; rules in
 * chains moat does not own are deleted by their full text (never by index: another program may
 * have moved them) and moat's jump is inserted at position 1.
 */
import type { Family } from '../policy/model.js';
import type { Plan, PlanStep } from '../plan/model.js';

export interface RestoreScripts {
  /** iptables-restore / ip6tables-restore input, or undefined when the family has no step. */
  readonly families: Readonly<Record<Family, string | undefined>>;
  /** ipset restore input that creates and refills sets before the iptables transactions. */
  readonly ipsetBefore?: string;
  /** ipset restore input that destroys sets after the iptables transactions stopped using them. */
  readonly ipsetAfter?: string;
}

function ipsetFamily(family: Family): string {
  return family === 'ipv4' ? 'inet' : 'inet6';
}

/** A temporary set for swapping in new members; owned (moat- prefix) so a leftover is cleaned up. */
export function swapSetName(name: string): string {
  return `${name.slice(0, 26)}.swp`;
}

function renderFamily(steps: readonly PlanStep[]): string | undefined {
  if (steps.length === 0) return undefined;
  const declare: string[] = [];
  const remove: string[] = [];
  const fill: string[] = [];
  const hook: string[] = [];
  const drop: string[] = [];
  for (const step of steps) {
    switch (step.kind) {
      case 'update-chain':
        if (step.edits !== undefined) {
          // Edit in place so unchanged rules keep their counters. Positions are moat's own
          // chain's, read under the lock, in the same transaction.
          for (const position of step.edits.delete) remove.push(`-D ${step.chain} ${position}`);
          for (const { position, rule } of step.edits.insert) {
            fill.push(`-I ${step.chain} ${position} ${rule.line}`);
          }
          break;
        }
        declare.push(`:${step.chain} - [0:0]`);
        for (const rule of step.rules) fill.push(`-A ${step.chain} ${rule.line}`);
        break;
      case 'create-chain':
        declare.push(`:${step.chain} - [0:0]`);
        for (const rule of step.rules) fill.push(`-A ${step.chain} ${rule.line}`);
        break;
      case 'delete-chain':
        declare.push(`:${step.chain} - [0:0]`);
        drop.push(`-X ${step.chain}`);
        break;
      case 'add-jump':
      case 'move-jump':
        for (const spec of step.remove) remove.push(`-D ${step.hook} ${spec}`);
        hook.push(`-I ${step.hook} 1 ${step.rule.line}`);
        break;
      case 'remove-jump':
        for (const spec of step.remove) remove.push(`-D ${step.hook} ${spec}`);
        break;
      case 'create-set':
      case 'update-set':
      case 'destroy-set':
        break;
    }
  }
  return ['*filter', ...declare, ...remove, ...fill, ...hook, ...drop, 'COMMIT', ''].join('\n');
}

export function renderRestore(plan: Plan): RestoreScripts {
  const before: string[] = [];
  const after: string[] = [];
  for (const step of plan.steps) {
    switch (step.kind) {
      case 'create-set': {
        const create = `create ${step.set} ${step.type} family ${ipsetFamily(step.family)}`;
        before.push(create, ...step.members.map((m) => `add ${step.set} ${m}`));
        break;
      }
      case 'update-set': {
        const tmp = swapSetName(step.set);
        before.push(
          `create ${tmp} ${step.type} family ${ipsetFamily(step.family)} -exist`,
          `flush ${tmp}`,
          ...step.members.map((m) => `add ${tmp} ${m}`),
          `swap ${tmp} ${step.set}`,
          `destroy ${tmp}`,
        );
        break;
      }
      case 'destroy-set':
        after.push(`destroy ${step.set}`);
        break;
      default:
        break;
    }
  }
  const byFamily = (family: Family): PlanStep[] =>
    plan.steps.filter((s) => 'family' in s && s.family === family && !s.kind.endsWith('-set'));
  return {
    families: { ipv4: renderFamily(byFamily('ipv4')), ipv6: renderFamily(byFamily('ipv6')) },
    ...(before.length > 0 ? { ipsetBefore: [...before, ''].join('\n') } : {}),
    ...(after.length > 0 ? { ipsetAfter: [...after, ''].join('\n') } : {}),
  };
}

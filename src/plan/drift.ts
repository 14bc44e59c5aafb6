/**
 * Short words for what a plan's steps change (`add-jump ipv4 DOCKER-USER`,
 * `update-set moat-office`): what a run record and watch's log say had drifted, and what
 * watch compares to tell a repair loop from separate tamperings. Pure.
 */
import type { Plan, PlanStep } from './model.js';

export function describeStep(step: PlanStep): string {
  switch (step.kind) {
    case 'create-set':
    case 'update-set':
    case 'destroy-set':
      return `${step.kind} ${step.set}`;
    case 'create-chain':
    case 'update-chain':
    case 'delete-chain':
      return `${step.kind} ${step.family} ${step.chain}`;
    case 'add-jump':
    case 'move-jump':
    case 'remove-jump':
      return `${step.kind} ${step.family} ${step.hook}`;
  }
}

/** The steps that put back what was changed outside moat, described. */
export function driftedObjects(plan: Plan): string[] {
  return plan.steps.filter((step) => step.reason === 'drift').map(describeStep);
}

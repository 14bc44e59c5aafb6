/** What every use case behind the CLI gets, and the one way they all plan. */
import { compile } from '../compile/compile.js';
import { hostFacts } from '../compile/host-facts.js';
import { ExitCode } from '../core/errors.js';
import type { CommandRunner } from '../core/runner.js';
import type { Inventory } from '../docker/model.js';
import type { BackendChoice } from '../netfilter/backend.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import { diff } from '../plan/diff.js';
import type { Plan } from '../plan/model.js';
import type { DesiredState } from '../compile/model.js';
import type { Policy } from '../policy/model.js';
import type { Io } from './io.js';

export interface Context {
  readonly io: Io;
  readonly runner: CommandRunner;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly color: boolean;
}

export interface HostOptions {
  readonly backend: BackendChoice;
}

export function desiredFor(
  policy: Policy,
  inventory: Inventory,
  live: LiveNetfilter,
): DesiredState {
  return compile(policy, inventory, hostFacts(live));
}

export function planFor(policy: Policy, inventory: Inventory, live: LiveNetfilter): Plan {
  return diff(desiredFor(policy, inventory, live), live);
}

export function changesExit(changed: boolean, detailed: boolean): number {
  return detailed && changed ? ExitCode.changes : ExitCode.ok;
}

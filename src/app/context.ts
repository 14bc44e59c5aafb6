/** What every use case behind the CLI gets, and the one way they all plan. */
import { compile } from '../compile/compile.js';
import { hostFacts } from '../compile/host-facts.js';
import { portsNamedBy } from '../compile/ingress.js';
import type { HostSystem } from '../host/system.js';
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
import type { View } from './view.js';

export interface Context {
  readonly io: Io;
  readonly runner: CommandRunner;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Text or JSON: chosen once by the CLI. */
  readonly view: View;
  /** Reads the host's interfaces and sockets (/proc); tests give a fixed answer. */
  readonly readSystem?: () => Promise<HostSystem>;
}

export interface HostOptions {
  readonly backend: BackendChoice;
}

export function desiredFor(
  policy: Policy,
  inventory: Inventory,
  live: LiveNetfilter,
  system: HostSystem = {},
): DesiredState {
  return compile(policy, inventory, hostFacts(live, system));
}

export function planFor(
  policy: Policy,
  inventory: Inventory,
  live: LiveNetfilter,
  system: HostSystem = {},
): Plan {
  return diff(desiredFor(policy, inventory, live, system), live);
}

/**
 * Names the programs listening on the ports the policy names, so a refusal to restrict a host
 * service can say which; looking owners up reads every process's descriptors, so only those.
 */
export async function withListenerNames(policy: Policy, system: HostSystem): Promise<HostSystem> {
  if (system.listeners === undefined) return system;
  const named = portsNamedBy(policy);
  if (named.length === 0) return system;
  const { nameListeners } = await import('../host/system.js');
  const listeners = await nameListeners(system.listeners, (l) =>
    named.some((r) => r.protocol === l.protocol && r.first <= l.port && l.port <= r.last),
  );
  return { ...system, listeners };
}

export function changesExit(changed: boolean, detailed: boolean): number {
  return detailed && changed ? ExitCode.changes : ExitCode.ok;
}

/**
 * What every part of compiling shares: the policy, the inventory read through the policy's
 * selectors, the host's facts, and how a source or destination becomes iptables matches in one
 * family. Pure.
 */
import type { DockerContainer, Inventory } from '../docker/model.js';
import { UserError } from '../core/errors.js';
import type { Family, Policy } from '../policy/model.js';
import type { HostFacts } from './host-facts.js';
import type { PlanWarning } from './model.js';
import {
  bridgeMembers,
  rawPublications,
  type BridgeMember,
  type RawPublication,
} from './publications.js';
import { selectContainers, type Selection } from './select.js';
import type { SourceSet } from './segments.js';

export class CompileContext {
  readonly warnings: PlanWarning[] = [];
  readonly selection: Selection;
  readonly members: readonly BridgeMember[];
  readonly publications: readonly RawPublication[];
  /** Container id → the groups selecting it, in file order. */
  private readonly groupsById = new Map<string, string[]>();
  /** Container id → its publications. */
  private readonly publicationsById = new Map<string, RawPublication[]>();

  constructor(
    readonly policy: Policy,
    readonly inventory: Inventory,
    readonly facts: HostFacts,
  ) {
    this.selection = selectContainers(policy.containers, inventory);
    this.warnings.push(...this.selection.warnings);
    this.members = bridgeMembers(inventory);
    this.publications = rawPublications(inventory);
    for (const g of policy.containers)
      for (const c of this.groupMembers(g.name))
        this.groupsById.set(c.id, [...(this.groupsById.get(c.id) ?? []), g.name]);
    for (const p of this.publications)
      this.publicationsById.set(p.container.id, [
        ...(this.publicationsById.get(p.container.id) ?? []),
        p,
      ]);
  }

  warn(code: string, message: string, level?: 'note'): void {
    if (!this.warnings.some((w) => w.code === code && w.message === message))
      this.warnings.push({ code, message, ...(level === undefined ? {} : { level }) });
  }

  /** A group's running containers. */
  groupMembers(group: string): readonly DockerContainer[] {
    return this.selection.members.get(group) ?? [];
  }

  /** The groups selecting a container, in file order. */
  groupsOf(container: DockerContainer): readonly string[] {
    return this.groupsById.get(container.id) ?? [];
  }

  /** Whether a group selects a container. */
  inGroup(group: string, container: DockerContainer): boolean {
    return this.groupsOf(container).includes(group);
  }

  /** A container's publications. */
  publicationsOf(container: DockerContainer): readonly RawPublication[] {
    return this.publicationsById.get(container.id) ?? [];
  }

  /** The kernel name and family of a policy ipset key. */
  ipset(key: string): { name: string; family: Family } {
    const set = this.policy.ipsets.get(key);
    if (set === undefined) throw new UserError(`ipset "${key}" is not declared in the policy`);
    if (set.kind === 'managed') return { name: set.kernelName, family: set.family };
    const family = this.facts.ipsetFamilies.get(set.kernelName);
    if (family === undefined) {
      throw new UserError(
        `external ipset "${set.kernelName}" (policy key "${key}") does not exist on the host; create it first or remove the reference`,
        'missing-external-ipset',
      );
    }
    return { name: set.kernelName, family };
  }

  /** `-s 172.17.0.3/32` style addresses of a group's containers in one family, sorted. */
  groupAddresses(group: string, family: Family): string[] {
    return addressesOf(this.groupMembers(group), family);
  }

  /** Match fragments admitting a source set's members in one family (the host needs none). */
  sourceMatches(set: SourceSet, family: Family): string[] {
    const out: string[] = [];
    for (const block of set.cidrs) if (block.family === family) out.push(`-s ${block.cidr}`);
    for (const key of set.ipsets) {
      const s = this.ipset(key);
      if (s.family === family) out.push(`-m set --match-set ${s.name} src`);
    }
    for (const group of set.groups)
      for (const a of this.groupAddresses(group, family)) out.push(`-s ${a}`);
    return [...new Set(out)];
  }
}

export function hostAddress(address: string, family: Family): string {
  return family === 'ipv4' ? `${address}/32` : `${address}/128`;
}

export function addressesOf(containers: readonly DockerContainer[], family: Family): string[] {
  const out = new Set<string>();
  for (const c of containers) {
    for (const a of c.attachments) {
      const address = family === 'ipv4' ? a.ipv4 : a.ipv6;
      if (address !== undefined) out.add(hostAddress(address, family));
    }
  }
  return [...out].sort();
}

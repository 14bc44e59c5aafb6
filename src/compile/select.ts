/** Which running containers each policy group selects. */
import type { DockerContainer, Inventory } from '../docker/model.js';
import type { ContainerGroup, ContainerSelector } from '../policy/model.js';
import type { PlanWarning } from './model.js';
import { didYouMean } from '../core/suggest.js';

const COMPOSE_PROJECT = 'com.docker.compose.project';
const COMPOSE_SERVICE = 'com.docker.compose.service';

export function selects(selector: ContainerSelector, container: DockerContainer): boolean {
  switch (selector.kind) {
    case 'name':
      return selector.names.includes(container.name);
    case 'label': {
      const value = container.labels[selector.key];
      return value !== undefined && (selector.value === undefined || value === selector.value);
    }
    case 'compose':
      return (
        container.labels[COMPOSE_PROJECT] === selector.project &&
        (selector.service === undefined || container.labels[COMPOSE_SERVICE] === selector.service)
      );
  }
}

/** A running container (or compose project) whose name is close to what the selector names. */
function hint(selector: ContainerSelector, running: readonly DockerContainer[]): string {
  switch (selector.kind) {
    case 'name':
      return (
        selector.names
          .map((n) =>
            didYouMean(
              n,
              running.map((c) => c.name),
            ),
          )
          .find((h) => h !== '') ?? ''
      );
    case 'compose':
      return didYouMean(
        selector.project,
        running.flatMap((c) => c.labels[COMPOSE_PROJECT] ?? []),
      ).replace('?', ' (compose project)?');
    case 'label':
      return didYouMean(
        selector.key,
        running.flatMap((c) => Object.keys(c.labels)),
      ).replace('?', ' (label)?');
  }
}

export interface Selection {
  /** Group name → its running containers, sorted by name. */
  readonly members: ReadonlyMap<string, readonly DockerContainer[]>;
  /**
   * Container name → the group whose egress rules govern it: the first group in file order,
   * so a container chosen twice still gets one deterministic egress policy.
   */
  readonly egressOwner: ReadonlyMap<string, string>;
  readonly warnings: readonly PlanWarning[];
}

export function selectContainers(
  groups: readonly ContainerGroup[],
  inventory: Inventory,
): Selection {
  const running = inventory.containers.filter((c) => c.state === 'running');
  const members = new Map<string, DockerContainer[]>();
  const chosenBy = new Map<string, string[]>();
  const warnings: PlanWarning[] = [];
  for (const group of groups) {
    const chosen = running.filter((c) => selects(group.select, c));
    members.set(group.name, chosen);
    if (chosen.length === 0) {
      warnings.push({
        code: 'group-selects-nothing',
        message: `group "${group.name}" selects no running container${hint(group.select, running)}; its port rules stay in place, its address-based rules wait for a container`,
      });
    }
    for (const c of chosen) chosenBy.set(c.name, [...(chosenBy.get(c.name) ?? []), group.name]);
  }
  const egressOwner = new Map<string, string>();
  for (const [container, names] of chosenBy) {
    const first = names[0];
    if (first !== undefined) egressOwner.set(container, first);
    if (names.length > 1) {
      warnings.push({
        code: 'container-in-several-groups',
        message: `container "${container}" is selected by groups ${names.map((n) => `"${n}"`).join(', ')}; ingress rules of all apply, egress follows "${first ?? ''}"`,
      });
    }
  }
  return { members, egressOwner, warnings };
}

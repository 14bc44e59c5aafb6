/**
 * The interfaces Docker's bridge networks use, as iptables interface patterns that also cover
 * networks created after moat last ran: `docker0`, `br-+` (Docker names a network's bridge
 * `br-<id>`), `docker_gwbridge` (swarm), and any bridge a network names explicitly. Host
 * interfaces that match `br-+` but belong to no Docker network are exempted by name. Pure.
 */
import { INTERFACE_NAME } from '../core/interface-name.js';
import type { Inventory } from '../docker/model.js';
import type { CompileContext } from './context.js';

const GENERATED_BRIDGES = /^br-/;
/** What Docker itself names a network's bridge: never exempted, even if the network is new. */
const DOCKER_GENERATED = /^br-[0-9a-f]{12}$/;
const FIXED_BRIDGES = ['docker0', 'docker_gwbridge'];

export interface DockerBridges {
  /** `docker0`, `br-+`, `docker_gwbridge`, then explicitly named bridges, sorted. */
  readonly patterns: readonly string[];
  /** Host interfaces the `br-+` pattern matches that are not Docker's, sorted. */
  readonly exempt: readonly string[];
}

function dockerBridgeNames(inventory: Inventory): Set<string> {
  return new Set(inventory.networks.flatMap((n) => (n.bridge === undefined ? [] : [n.bridge])));
}

export function dockerBridges(context: CompileContext): DockerBridges {
  const ours = dockerBridgeNames(context.inventory);
  const custom: string[] = [];
  for (const name of [...ours].sort()) {
    if (FIXED_BRIDGES.includes(name) || GENERATED_BRIDGES.test(name)) continue;
    if (INTERFACE_NAME.test(name)) custom.push(name);
    else
      context.warn(
        'bad-bridge-name',
        `Docker network bridge ${JSON.stringify(name.slice(0, 40))} is not a name moat can write into a rule; its containers are not covered by the defaults`,
      );
  }
  const exempt = (context.facts.interfaces ?? [])
    .filter(
      (i) =>
        GENERATED_BRIDGES.test(i) &&
        !DOCKER_GENERATED.test(i) &&
        !ours.has(i) &&
        INTERFACE_NAME.test(i),
    )
    .sort();
  return { patterns: ['docker0', 'br-+', 'docker_gwbridge', ...custom], exempt };
}

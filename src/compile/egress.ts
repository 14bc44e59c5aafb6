/**
 * Egress: where containers may open connections. `defaults.egress` is enforced by a catch-all
 * keyed on Docker's bridge interfaces, so a container moat has never seen is held by it from its
 * first packet. A group with its own egress section is keyed on its containers' addresses (the
 * only handle on one container among many on a bridge) and jumps to the group's chain: deny
 * rules (DROP; deny wins), then allow rules (RETURN), then the group's default. Pure.
 */
import type { DockerContainer } from '../docker/model.js';
import type { EgressDestination, EgressPolicy, EgressRule, Family } from '../policy/model.js';
import { addressesOf, type CompileContext } from './context.js';
import { portLabel, portMatch } from './ingress.js';
import type { EgressExposure, EgressTarget, RuleOrigin } from './model.js';
import { egressChainName } from './naming.js';

export const DEFAULTS_EGRESS: RuleOrigin = { path: ['defaults', 'egress'] };
/** The containers no group's own egress section governs: `defaults.egress` holds them. */
export const UNGROUPED = '(defaults)';

/** A group whose own egress section governs its containers. */
export interface EgressGroup {
  readonly name: string;
  readonly egress: EgressPolicy;
  readonly containers: readonly DockerContainer[];
  readonly chain: string;
}

/** One rule of a group's chain, with the policy rule it came from. */
export interface EgressSpec {
  readonly spec: string;
  readonly origin: RuleOrigin;
}

export class Egress {
  readonly groups: readonly EgressGroup[];
  readonly defaultDeny: boolean;

  constructor(private readonly context: CompileContext) {
    this.defaultDeny = context.policy.defaults.egress === 'deny';
    const governed = new Map<string, DockerContainer[]>();
    for (const c of context.inventory.containers) {
      if (c.state !== 'running') continue;
      const owner = context.selection.egressOwner.get(c.name);
      if (owner !== undefined) governed.set(owner, [...(governed.get(owner) ?? []), c]);
    }
    this.groups = context.policy.containers.flatMap((g) =>
      g.egress === undefined
        ? []
        : [
            {
              name: g.name,
              egress: g.egress,
              containers: governed.get(g.name) ?? [],
              chain: egressChainName(g.name),
            },
          ],
    );
  }

  private destinationMatches(to: EgressDestination, family: Family): string[] {
    switch (to.kind) {
      case 'any':
        return [''];
      case 'cidr':
        return to.block.family === family ? [`-d ${to.block.cidr}`] : [];
      case 'ipset': {
        const set = this.context.ipset(to.set);
        return set.family === family ? [`-m set --match-set ${set.name} dst`] : [];
      }
      case 'container':
        return this.context.groupAddresses(to.group, family).map((a) => `-d ${a}`);
    }
  }

  private ruleSpecs(
    group: string,
    list: 'allow' | 'deny',
    rules: readonly EgressRule[],
    family: Family,
    verdict: 'RETURN' | 'DROP',
  ): EgressSpec[] {
    const specs: EgressSpec[] = [];
    rules.forEach((rule, index) => {
      const origin: RuleOrigin = { path: ['containers', group, 'egress', list, index] };
      for (const to of rule.to) {
        for (const dest of this.destinationMatches(to, family)) {
          for (const port of rule.ports ?? [undefined]) {
            const portPart =
              port === undefined
                ? ''
                : `-p ${port.protocol} -m ${port.protocol} --dport ${portMatch(port)}`;
            const spec = [dest, portPart, `-j ${verdict}`].filter((s) => s !== '').join(' ');
            specs.push({ spec, origin });
          }
        }
      }
    });
    return specs;
  }

  /** The body of a group's chain in one family; empty when it would change nothing. */
  chainBody(group: EgressGroup, family: Family): EgressSpec[] {
    const { egress } = group;
    const body = this.ruleSpecs(group.name, 'deny', egress.deny, family, 'DROP');
    if (egress.default === 'deny') {
      body.push(...this.ruleSpecs(group.name, 'allow', egress.allow, family, 'RETURN'));
      body.push({
        spec: '-j DROP',
        origin: { path: ['containers', group.name, 'egress', 'default'] },
      });
    }
    const seen = new Set<string>();
    return body.filter((s) => !seen.has(s.spec) && (seen.add(s.spec), true));
  }

  /** The addresses of a group's containers in one family. */
  addresses(group: EgressGroup, family: Family): string[] {
    return addressesOf(group.containers, family);
  }

  exposures(): EgressExposure[] {
    const named = this.groups.map((g) => exposure(g.name, g.containers, g.egress, g.chain));
    if (!this.defaultDeny) return named;
    const governed = new Set(this.groups.flatMap((g) => g.containers.map((c) => c.id)));
    const rest = this.context.inventory.containers.filter(
      (c) => c.state === 'running' && !governed.has(c.id),
    );
    return [...named, exposure(UNGROUPED, rest, { default: 'deny', allow: [], deny: [] })];
  }
}

function target(rule: EgressRule): EgressTarget {
  return {
    to: rule.to.map((d) =>
      d.kind === 'any'
        ? 'any'
        : d.kind === 'cidr'
          ? d.block.cidr
          : d.kind === 'ipset'
            ? `ipset:${d.set}`
            : `container:${d.group}`,
    ),
    ports: (rule.ports ?? []).map(portLabel),
  };
}

function exposure(
  group: string,
  containers: readonly DockerContainer[],
  egress: EgressPolicy,
  chain?: string,
): EgressExposure {
  return {
    group,
    containers: containers.map((c) => c.name),
    ...(chain === undefined ? {} : { chain }),
    default: egress.default,
    allow: egress.default === 'deny' ? egress.allow.map(target) : [],
    deny: egress.deny.map(target),
  };
}

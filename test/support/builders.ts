/** Small builders for pure tests: policies, inventories and live states without a kernel. */
import { compile } from '../../src/compile/compile.js';
import type { DesiredState } from '../../src/compile/model.js';
import type { DockerContainer, DockerNetwork, Inventory } from '../../src/docker/model.js';
import type { LiveChain, LiveNetfilter, LiveRule, LiveRuleset } from '../../src/netfilter/model.js';
import type {
  ContainerGroup,
  Family,
  Policy,
  PolicyIpset,
  PortRange,
} from '../../src/policy/model.js';

export function tcp(first: number, last = first): PortRange {
  return { protocol: 'tcp', first, last };
}

export function policy(containers: ContainerGroup[], extra: Partial<Policy> = {}): Policy {
  return {
    version: 1,
    defaults: { ingress: 'allow', egress: 'allow' },
    ipsets: new Map<string, PolicyIpset>(),
    containers,
    ...extra,
  };
}

/** A managed IPv4 set `moat-<key>`, as the policy parser would produce it. */
export function managedIpset(
  key: string,
  type: 'hash:ip' | 'hash:net',
  entries: string[],
): [string, PolicyIpset] {
  return [key, { kind: 'managed', key, kernelName: `moat-${key}`, family: 'ipv4', type, entries }];
}

export function group(name: string, rest: Partial<ContainerGroup> = {}): ContainerGroup {
  return { name, select: { kind: 'name', names: [name] }, ingress: [], ...rest };
}

export function container(
  name: string,
  ipv4: string,
  ports: { host: number; container?: number; protocol?: 'tcp' | 'udp' }[] = [],
  extra: Partial<DockerContainer> = {},
): DockerContainer {
  return {
    id: `${name}-id`,
    name,
    labels: {},
    state: 'running',
    attachments: [{ network: 'bridge', networkId: 'n1', ipv4 }],
    ports: ports.map((p) => ({
      hostIp: '0.0.0.0',
      hostPort: p.host,
      containerPort: p.container ?? p.host,
      protocol: p.protocol ?? 'tcp',
    })),
    ...extra,
  };
}

/** A bridge network: `bridge` is docker0; others get `br-` and their id's first 12 characters. */
export function bridgeNetwork(
  name: string,
  id: string,
  extra: Partial<DockerNetwork> = {},
): DockerNetwork {
  return {
    id,
    name,
    driver: 'bridge',
    bridge: name === 'bridge' ? 'docker0' : `br-${id.padEnd(12, '0').slice(0, 12)}`,
    internal: false,
    subnets: [],
    ipv6: false,
    gatewayMode: { ipv4: 'nat', ipv6: 'nat' },
    ...extra,
  };
}

/** Containers, and the bridge networks they are attached to (nat mode unless given). */
export function inventory(...containers: DockerContainer[]): Inventory {
  return inventoryWith([], ...containers);
}

export function inventoryWith(
  networks: DockerNetwork[],
  ...containers: DockerContainer[]
): Inventory {
  const all = new Map(networks.map((n) => [n.id, n] as const));
  for (const c of containers)
    for (const a of c.attachments)
      if (!all.has(a.networkId)) all.set(a.networkId, bridgeNetwork(a.network, a.networkId));
  return { containers, networks: [...all.values()] };
}

/** Docker's filter chains as a 20.10 host has them, with an optional user rule in DOCKER-USER. */
export function dockerRuleset(family: Family, userRules: string[] = []): LiveRuleset {
  const chain = (name: string, rules: string[], policy?: string): LiveChain => ({
    name,
    ...(policy === undefined ? {} : { policy }),
    rules: rules.map((spec) => ruleOf(spec)),
  });
  const chains = new Map<string, LiveChain>([
    ['INPUT', chain('INPUT', [], 'ACCEPT')],
    ['FORWARD', chain('FORWARD', ['-j DOCKER-USER', '-j DOCKER-ISOLATION-STAGE-1'], 'DROP')],
    ['OUTPUT', chain('OUTPUT', [], 'ACCEPT')],
    ['DOCKER', chain('DOCKER', [])],
    ['DOCKER-ISOLATION-STAGE-1', chain('DOCKER-ISOLATION-STAGE-1', ['-j RETURN'])],
    ['DOCKER-USER', chain('DOCKER-USER', [...userRules, '-j RETURN'])],
  ]);
  return { family, tables: new Map([['filter', { name: 'filter', chains }]]) };
}

export function ruleOf(spec: string): LiveRule {
  const id = /--comment "?moat:([0-9a-z]+)"?/.exec(spec)?.[1];
  const target = /(?:^| )-[jg] (\S+)/.exec(spec)?.[1];
  return {
    spec,
    ...(id === undefined ? {} : { moatId: id }),
    ...(target === undefined ? {} : { target }),
  };
}

export function dockerHost(userRules: string[] = []): LiveNetfilter {
  return {
    backend: 'nft',
    rulesets: { ipv4: dockerRuleset('ipv4', userRules), ipv6: dockerRuleset('ipv6', userRules) },
    ipsets: new Map(),
  };
}

/**
 * What the host would hold after a perfect apply of `desired` on top of `base`: a simulation
 * for pure tests only; the real thing is tested against the kernel.
 */
export function appliedLive(desired: DesiredState, base: LiveNetfilter): LiveNetfilter {
  const rulesets = { ...base.rulesets };
  for (const family of ['ipv4', 'ipv6'] as const) {
    const want = desired.families[family];
    const old = base.rulesets[family].tables.get('filter')?.chains ?? new Map<string, LiveChain>();
    const chains = new Map<string, LiveChain>();
    for (const [name, chain] of old) {
      if (name.startsWith('MOAT-')) continue;
      const kept = chain.rules.filter(
        (r) => r.moatId === undefined && !(r.target ?? '').startsWith('MOAT-'),
      );
      const jump = want.jumps.find((j) => j.hook === name);
      const rules = jump === undefined ? kept : [ruleOf(jump.rule.line), ...kept];
      chains.set(name, { ...chain, rules });
    }
    for (const chain of want.chains) {
      chains.set(chain.name, { name: chain.name, rules: chain.rules.map((r) => ruleOf(r.line)) });
    }
    rulesets[family] = { family, tables: new Map([['filter', { name: 'filter', chains }]]) };
  }
  const ipsets = new Map([...base.ipsets].filter(([name]) => !name.startsWith('moat-')));
  for (const set of desired.ipsets) {
    ipsets.set(set.name, {
      name: set.name,
      type: set.type,
      family: set.family,
      options: '',
      members: set.members,
    });
  }
  return { backend: base.backend, rulesets, ipsets };
}

/** `live` with `edit` done to its IPv4 filter chain `name` (a flush, a rule changed by hand). */
export function editChain(
  live: LiveNetfilter,
  name: string,
  edit: (chain: LiveChain) => LiveChain,
): LiveNetfilter {
  const table = live.rulesets.ipv4.tables.get('filter');
  if (table === undefined) throw new Error('no filter table');
  const chains = new Map(table.chains);
  const chain = chains.get(name);
  if (chain === undefined) throw new Error(`no chain ${name}`);
  chains.set(name, edit(chain));
  return {
    ...live,
    rulesets: {
      ...live.rulesets,
      ipv4: { family: 'ipv4', tables: new Map([['filter', { name: 'filter', chains }]]) },
    },
  };
}

/** ghost's 2368/tcp open to the host and to a managed set `office`: a desired state with a set. */
export function ghostWithOffice(): DesiredState {
  return compile(
    policy(
      [
        group('ghost', {
          ingress: [
            { ports: [tcp(2368)], from: [{ kind: 'host' }, { kind: 'ipset', set: 'office' }] },
          ],
        }),
      ],
      { ipsets: new Map([managedIpset('office', 'hash:net', ['198.51.100.0/24'])]) },
    ),
    inventory(container('ghost', '172.17.0.2', [{ host: 2368 }])),
  );
}

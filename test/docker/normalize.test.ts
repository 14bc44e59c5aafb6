import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { MoatError } from '../../src/core/errors.js';
import type { DockerContainer, DockerNetwork, Inventory } from '../../src/docker/model.js';
import { inventoryFromApi } from '../../src/docker/normalize.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/docker');
const load = (name: string): unknown =>
  JSON.parse(readFileSync(resolve(FIXTURES, name), 'utf8')) as unknown;
const liveContainers = () => load('containers.api-list.json');
const liveNetworks = () => load('networks.inspect.json');

const byName = <T extends { name: string }>(items: readonly T[], name: string): T => {
  const found = items.find((item) => item.name === name);
  if (found === undefined) throw new Error(`${name} not found`);
  return found;
};

/** Runs `inventoryFromApi` and returns the error it threw, or undefined. */
function failure(containers: unknown, networks: unknown = []): unknown {
  try {
    inventoryFromApi(containers, networks);
    return undefined;
  } catch (error) {
    return error;
  }
}

function expectApiError(error: unknown, mentions?: string): void {
  expect(error).toBeInstanceOf(MoatError);
  expect((error as MoatError).code).toBe('docker-api');
  if (mentions !== undefined) expect((error as MoatError).message).toContain(mentions);
}

describe('inventoryFromApi: the Docker 20.10 live capture', () => {
  const inventory: Inventory = inventoryFromApi(liveContainers(), liveNetworks());

  test('containers are sorted by name, without the leading slash', () => {
    expect(inventory.containers.map((c) => c.name)).toEqual(['api', 'ghost', 'web6']);
  });

  test("ghost's 2368 is published on both families and it sits on bridge and appnet", () => {
    const ghost: DockerContainer = byName(inventory.containers, 'ghost');
    expect(ghost.id).toBe('df936733dec8faee050d49836a519ea8a22ababc13f7aabf2300ac408a6d6088');
    expect(ghost.state).toBe('running');
    expect(ghost.labels).toEqual({});
    expect(ghost.ports).toEqual([
      { hostIp: '0.0.0.0', hostPort: 2368, containerPort: 2368, protocol: 'tcp' },
      { hostIp: '::', hostPort: 2368, containerPort: 2368, protocol: 'tcp' },
    ]);
    // After `docker network connect` the DNAT target moved to the appnet address 172.30.0.3.
    expect(ghost.attachments).toEqual([
      {
        network: 'appnet',
        networkId: 'e029e4cbddb65fe560ad36ab8032483aab5a791d0e6a265dd44ff9164f925b31',
        ipv4: '172.30.0.3',
      },
      {
        network: 'bridge',
        networkId: 'bebad55cb68606aca6c697d24f4f21d9ff45c23110d7005fef480b9422bf8773',
        ipv4: '172.17.0.2',
      },
    ]);
  });

  test('api: a loopback-only TCP port, a UDP port, its label', () => {
    const api = byName(inventory.containers, 'api');
    expect(api.labels).toEqual({ 'fw.role': 'api' });
    expect(api.ports).toEqual([
      { hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostIp: '0.0.0.0', hostPort: 9000, containerPort: 9000, protocol: 'udp' },
      { hostIp: '::', hostPort: 9000, containerPort: 9000, protocol: 'udp' },
    ]);
    expect(api.attachments).toEqual([
      {
        network: 'appnet',
        networkId: 'e029e4cbddb65fe560ad36ab8032483aab5a791d0e6a265dd44ff9164f925b31',
        ipv4: '172.30.0.2',
      },
    ]);
  });

  test('web6 has an IPv6 address; empty IPv6 strings elsewhere are absent', () => {
    const web6 = byName(inventory.containers, 'web6');
    expect(web6.attachments).toEqual([
      {
        network: 'v6net',
        networkId: '6ead47647eec55fc0fb7e6c5b483bfd3cf6692e9d0e28d7e8d07643c21fe223d',
        ipv4: '172.31.0.2',
        ipv6: 'fd00:db8:1::2',
      },
    ]);
    for (const c of inventory.containers)
      for (const a of c.attachments) expect(a.ipv6 === undefined || a.ipv6 !== '').toBe(true);
    expect('ipv6' in byName(inventory.containers, 'api').attachments[0]!).toBe(false);
  });

  test('networks: bridge interface names, subnets, internal flag', () => {
    const networks: readonly DockerNetwork[] = inventory.networks;
    expect(networks.map((n) => n.name)).toEqual(['appnet', 'bridge', 'v6net']);
    expect(byName(networks, 'bridge')).toEqual({
      id: 'bebad55cb68606aca6c697d24f4f21d9ff45c23110d7005fef480b9422bf8773',
      name: 'bridge',
      driver: 'bridge',
      bridge: 'docker0',
      internal: false,
      subnets: ['172.17.0.0/16'],
      ipv6: false,
      gatewayMode: { ipv4: 'nat', ipv6: 'nat' },
    });
    expect(byName(networks, 'v6net').ipv6).toBe(true);
    expect(byName(networks, 'appnet').bridge).toBe('br-e029e4cbddb6');
    expect(byName(networks, 'v6net').bridge).toBe('br-6ead47647eec');
    expect(byName(networks, 'v6net').subnets).toEqual(['172.31.0.0/24', 'fd00:db8:1::/64']);
  });

  test('the result does not depend on the order of the answers', () => {
    const containers = (liveContainers() as unknown[]).reverse();
    const networks = (liveNetworks() as unknown[]).reverse();
    expect(inventoryFromApi(containers, networks)).toEqual(inventory);
  });
});

describe('inventoryFromApi: what other daemons and setups send', () => {
  const network = (fields: Record<string, unknown>) => ({
    Id: '0123456789abcdef0123',
    Name: 'n',
    Driver: 'bridge',
    ...fields,
  });

  test('the default bridge without the name option is docker0; others br-<id12>; explicit names win', () => {
    const { networks } = inventoryFromApi(
      [],
      [
        network({ Name: 'bridge', Options: null }),
        network({ Name: 'mine', Options: {} }),
        network({ Name: 'named', Options: { 'com.docker.network.bridge.name': 'lan0' } }),
      ],
    );
    expect(networks.map((n) => [n.name, n.bridge])).toEqual([
      ['bridge', 'docker0'],
      ['mine', 'br-0123456789ab'],
      ['named', 'lan0'],
    ]);
  });

  test('non-bridge networks have no bridge; internal and null IPAM are read', () => {
    const { networks } = inventoryFromApi(
      [],
      [
        network({ Name: 'host', Driver: 'host', IPAM: { Config: null } }),
        network({ Name: 'iso', Internal: true, IPAM: { Config: [{ Subnet: '10.9.0.0/24' }, {}] } }),
      ],
    );
    expect(networks[0]).toEqual({
      id: '0123456789abcdef0123',
      name: 'host',
      driver: 'host',
      internal: false,
      subnets: [],
      ipv6: false,
      gatewayMode: { ipv4: 'nat', ipv6: 'nat' },
    });
    expect(networks[1]).toMatchObject({ internal: true, subnets: ['10.9.0.0/24'] });
  });

  test('gateway modes per family (Docker 27+); an unknown mode is refused, not guessed', () => {
    const { networks } = inventoryFromApi(
      [],
      [
        network({
          Name: 'r',
          EnableIPv6: true,
          Options: {
            'com.docker.network.bridge.gateway_mode_ipv4': 'nat-unprotected',
            'com.docker.network.bridge.gateway_mode_ipv6': 'routed',
          },
        }),
      ],
    );
    expect(networks[0]).toMatchObject({
      ipv6: true,
      gatewayMode: { ipv4: 'nat-unprotected', ipv6: 'routed' },
    });
    expect(() =>
      inventoryFromApi(
        [],
        [network({ Options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'bogus' } })],
      ),
    ).toThrow(/gateway_mode_ipv4.*is not a gateway mode moat knows/);
  });

  test('a routed binding (an address, no host port) is kept without a host port', () => {
    // What Docker 28 lists for `-p 8080:80` on a network in gateway mode `routed`.
    const [c] = inventoryFromApi(
      [
        {
          Id: 'r1',
          Names: ['/r1'],
          State: 'running',
          Ports: [
            { IP: '0.0.0.0', PrivatePort: 80, Type: 'tcp' },
            { IP: '::', PrivatePort: 80, Type: 'tcp' },
            { PrivatePort: 443, Type: 'tcp' },
          ],
          NetworkSettings: { Networks: {} },
        },
      ],
      [],
    ).containers;
    expect(c!.ports).toEqual([
      { hostIp: '0.0.0.0', containerPort: 80, protocol: 'tcp' },
      { hostIp: '::', containerPort: 80, protocol: 'tcp' },
    ]);
  });

  test('exposed-only ports are skipped, duplicates collapse, a missing IP is every address', () => {
    const [c] = inventoryFromApi(
      [
        {
          Id: 'abc',
          Names: ['/other/alias', '/svc'],
          Labels: null,
          State: 'running',
          Ports: [
            { PrivatePort: 53, Type: 'udp' },
            { PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
            { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
            { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
          ],
          NetworkSettings: { Networks: { host: { NetworkID: 'h', IPAddress: '' } } },
        },
      ],
      [],
    ).containers;
    expect(c!.name).toBe('svc');
    expect(c!.labels).toEqual({});
    expect(c!.ports).toEqual([
      { hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
    ]);
    expect(c!.attachments).toEqual([{ network: 'host', networkId: 'h' }]);
  });
});

describe('inventoryFromApi: malformed answers are MoatErrors that say what was wrong', () => {
  const good = (liveContainers() as Record<string, unknown>[])[0]!;

  test.each([
    ['not a list', { message: 'page not found' }, 'containers is not a list'],
    ['null', null, 'containers is not a list'],
    ['an entry that is a string', ['x'], 'containers[0] is not an object'],
    ['no Id', [{ ...good, Id: undefined }], 'containers[0].Id'],
    ['no Names', [{ ...good, Names: undefined }], 'containers[0].Names'],
    ['empty Names', [{ ...good, Names: [] }], 'has no container name'],
    ['a label that is a number', [{ ...good, Labels: { a: 1 } }], 'containers[0].Labels["a"]'],
    [
      'a bad port',
      [{ ...good, Ports: [{ PrivatePort: 1, PublicPort: 70000, Type: 'tcp' }] }],
      'PublicPort',
    ],
    [
      'a bad protocol',
      [{ ...good, Ports: [{ PrivatePort: 1, PublicPort: 2, Type: 'icmp' }] }],
      'Type',
    ],
    ['Networks that is a list', [{ ...good, NetworkSettings: { Networks: [] } }], 'Networks'],
    [
      'an address that is a number',
      [{ ...good, NetworkSettings: { Networks: { b: { IPAddress: 1 } } } }],
      'IPAddress',
    ],
  ])('containers: %s', (_, containers, mentions) => {
    expectApiError(failure(containers), mentions);
  });

  test.each([
    ['not a list', {}, 'networks is not a list'],
    ['no Id', [{ Name: 'x', Driver: 'bridge' }], 'networks[0].Id'],
    ['Internal that is a string', [{ Id: 'i', Name: 'x', Internal: 'yes' }], 'Internal'],
    [
      'a bridge name that is a number',
      [{ Id: 'i', Name: 'x', Driver: 'bridge', Options: { 'com.docker.network.bridge.name': 5 } }],
      'bridge.name',
    ],
    [
      'IPAM.Config that is an object',
      [{ Id: 'i', Name: 'x', IPAM: { Config: {} } }],
      'IPAM.Config',
    ],
  ])('networks: %s', (_, networks, mentions) => {
    expectApiError(failure([], networks), mentions);
  });

  test('the live answers with any one field removed: an inventory or a MoatError', () => {
    const containers = liveContainers() as Record<string, unknown>[];
    const networks = liveNetworks() as Record<string, unknown>[];
    let errors = 0;
    for (const [i, c] of containers.entries())
      for (const key of Object.keys(c)) {
        const truncated = containers.map((other, j) => {
          if (j !== i) return other;
          return Object.fromEntries(Object.entries(other).filter(([k]) => k !== key));
        });
        const error = failure(truncated, networks);
        if (error !== undefined) {
          expectApiError(error, `containers[${i}]`);
          errors++;
        }
      }
    // Id and Names are required of every container.
    expect(errors).toBe(2 * containers.length);
  });

  test('random JSON values never crash: an inventory or a docker-api MoatError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (containers, networks) => {
        const error = failure(containers, networks);
        if (error !== undefined) expectApiError(error);
      }),
      { numRuns: 500 },
    );
  });

  test('the live answers with one field replaced by random JSON never crash', () => {
    const containers = liveContainers() as Record<string, unknown>[];
    const networks = liveNetworks() as Record<string, unknown>[];
    const containerKeys = ['Id', 'Names', 'Labels', 'State', 'Ports', 'NetworkSettings'];
    const networkKeys = ['Id', 'Name', 'Driver', 'Options', 'Internal', 'IPAM'];
    fc.assert(
      fc.property(
        fc.nat(containers.length - 1),
        fc.constantFrom(...containerKeys),
        fc.nat(networks.length - 1),
        fc.constantFrom(...networkKeys),
        fc.jsonValue(),
        (ci, ck, ni, nk, junk) => {
          const cs = containers.map((c, i) => (i === ci ? { ...c, [ck]: junk } : c));
          const ns = networks.map((n, i) => (i === ni ? { ...n, [nk]: junk } : n));
          const error = failure(cs, ns);
          if (error !== undefined) expectApiError(error);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('deep fuzz: a random value anywhere inside a port or an attachment', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (port, attachment) => {
        const c = {
          ...good,
          Ports: [port],
          NetworkSettings: { Networks: { x: attachment } },
        };
        const error = failure([c]);
        if (error !== undefined) expectApiError(error);
      }),
      { numRuns: 500 },
    );
  });
});

describe('inventoryFromApi: what reaches a rule is checked, not trusted', () => {
  type Raw = Record<string, unknown>;
  const edited = (edit: (containers: Raw[], networks: Raw[]) => void): unknown => {
    const containers = liveContainers() as Raw[];
    const networks = liveNetworks() as Raw[];
    edit(containers, networks);
    return failure(containers, networks);
  };
  const firstAttachment = (containers: Raw[]): Raw => {
    const settings = containers[0]?.NetworkSettings as { Networks: Record<string, Raw> };
    const first = Object.values(settings.Networks)[0];
    if (first === undefined) throw new Error('fixture has no attachment');
    return first;
  };

  test('the unedited capture passes', () => {
    expect(edited(() => undefined)).toBeUndefined();
  });

  test('a container address that carries rule text is refused', () => {
    const error = edited((containers) => {
      firstAttachment(containers).IPAddress = '172.30.0.9/0 -j ACCEPT -s 1.2.3.4';
    });
    expectApiError(error, 'is not an address');
  });

  test('a bridge name iptables would read as a wildcard or a quote is refused', () => {
    for (const name of ['ap"p', 'br+', 'a b']) {
      const error = edited((_, networks) => {
        const appnet = networks.find((n) => n.Name !== 'bridge') as Raw;
        appnet.Options = { 'com.docker.network.bridge.name': name };
      });
      expectApiError(error, 'is not an interface name');
    }
  });

  test('a subnet must be an address block', () => {
    const error = edited((_, networks) => {
      const ipam = networks[0]?.IPAM as { Config: Raw[] };
      ipam.Config = [{ Subnet: '172.17.0.0/16 -j ACCEPT' }];
    });
    expectApiError(error, 'is not an address block');
  });
});

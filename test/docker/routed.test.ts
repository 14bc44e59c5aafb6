/** routed.ts: which containers moat asks about, and what their answers add to the list answer. */
import { describe, expect, test } from '@jest/globals';
import { inventoryFromApi } from '../../src/docker/normalize.js';
import { containersToInspect, withRoutedBindings } from '../../src/docker/routed.js';

const network = (id: string, options: Record<string, string> = {}) => ({
  Id: id,
  Name: id,
  Driver: 'bridge',
  IPAM: { Config: [] },
  Options: options,
});
const container = (id: string, net: string, ports: unknown[] = []) => ({
  Id: id,
  Names: [`/${id}`],
  State: 'running',
  Ports: ports,
  NetworkSettings: { Networks: { [net]: { NetworkID: net } } },
});
const inspect = (ports: unknown) => ({ NetworkSettings: { Ports: ports } });

describe('containersToInspect', () => {
  test('only containers on a network that routes IPv4 or IPv6', () => {
    const inventory = inventoryFromApi(
      [container('a', 'nat'), container('b', 'r4'), container('c', 'r6')],
      [
        network('nat'),
        network('r4', { 'com.docker.network.bridge.gateway_mode_ipv4': 'routed' }),
        network('r6', { 'com.docker.network.bridge.gateway_mode_ipv6': 'routed' }),
      ],
    );
    expect(containersToInspect(inventory).sort()).toEqual(['b', 'c']);
  });
});

describe('withRoutedBindings', () => {
  test('adds the bindings without a host port, in the shape Docker 28 lists them', () => {
    const answer = inspect({
      '80/tcp': [
        { HostIp: '0.0.0.0', HostPort: '' },
        { HostIp: '::', HostPort: '' },
      ],
      '90/udp': [{ HostIp: '0.0.0.0', HostPort: '9090' }],
      '53/udp': null,
    });
    const out = withRoutedBindings([container('b', 'r4')], new Map([['b', answer]]));
    expect((out as { Ports: unknown[] }[])[0]?.Ports).toEqual([
      { IP: '0.0.0.0', PrivatePort: 80, Type: 'tcp' },
      { IP: '::', PrivatePort: 80, Type: 'tcp' },
    ]);
  });

  test('a binding the list already has (Docker 28) is not added twice; a DNATed one is not routed', () => {
    const listed = [
      { IP: '0.0.0.0', PrivatePort: 80, Type: 'tcp' },
      { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    ];
    const answer = inspect({
      '80/tcp': [
        { HostIp: '0.0.0.0', HostPort: '' },
        { HostIp: '::', HostPort: '' },
      ],
    });
    const out = withRoutedBindings([container('b', 'r4', listed)], new Map([['b', answer]]));
    expect((out as { Ports: unknown[] }[])[0]?.Ports).toEqual([
      ...listed,
      { IP: '::', PrivatePort: 80, Type: 'tcp' },
    ]);
  });

  test('containers not inspected, and answers of an unexpected shape, change nothing', () => {
    const list = [container('a', 'nat'), container('b', 'r4')];
    expect(withRoutedBindings(list, new Map())).toBe(list);
    const odd = withRoutedBindings(
      list,
      new Map<string, unknown>([
        ['b', { NetworkSettings: { Ports: { 'eighty/tcp': [{ HostPort: '' }] } } }],
      ]),
    );
    expect(odd).toEqual(list);
  });

  test('an address the daemon got wrong is reported by normalize, naming the field', () => {
    const answer = inspect({ '80/tcp': [{ HostIp: '0.0.0.0 -j ACCEPT', HostPort: '' }] });
    const out = withRoutedBindings([container('b', 'r4')], new Map([['b', answer]]));
    expect(() => inventoryFromApi(out, [network('r4')])).toThrow(/containers\[0\]\.Ports\[0\]\.IP/);
  });
});

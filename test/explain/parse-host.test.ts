/** The host facts' parsers, on output captured from a Docker 28.5.2 host in a namespace. */
import { describe, expect, test } from '@jest/globals';
import {
  extraRoutingRules,
  parseDockerInfo,
  parseIpAddr,
  parseIpRoute,
  parseNftTables,
  parseProxies,
  parseSockets,
  parseSysctl,
} from '../../src/explain/parse-host.js';

describe('parse-host', () => {
  test('ss -Hlntup: addresses, wildcards, devices and owners', () => {
    const text = [
      'tcp LISTEN 0      4096   0.0.0.0:8443 0.0.0.0:* users:(("docker-proxy",pid=25631,fd=7))',
      'tcp LISTEN 0      4096      [::]:2368    [::]:* users:(("docker-proxy",pid=25421,fd=7))',
      'tcp LISTEN 0      128          *:22         *:* users:(("sshd",pid=1,fd=3))',
      'udp UNCONN 0      0      127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=9,fd=13))',
      'tcp LISTEN 0      4096 127.0.0.1:8080 0.0.0.0:*',
    ].join('\n');
    expect(parseSockets(text)).toEqual([
      { protocol: 'tcp', address: '0.0.0.0', port: 8443, process: 'docker-proxy', pid: 25631 },
      { protocol: 'tcp', address: '::', port: 2368, process: 'docker-proxy', pid: 25421 },
      { protocol: 'tcp', address: '*', port: 22, process: 'sshd', pid: 1 },
      {
        protocol: 'udp',
        address: '127.0.0.53',
        port: 53,
        device: 'lo',
        process: 'systemd-resolve',
        pid: 9,
      },
      { protocol: 'tcp', address: '127.0.0.1', port: 8080 },
    ]);
  });

  test("ps: docker-proxy's target", () => {
    const text =
      '25416 /usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 2368 -container-ip 172.17.0.2 -container-port 2368 -use-listen-fd\n' +
      '  777 /usr/bin/docker-proxy -proto udp -host-ip :: -host-port 53 -container-ip fd00::2 -container-port 5353\n';
    expect(parseProxies(text)).toEqual([
      { pid: 25416, protocol: 'tcp', containerIp: '172.17.0.2', containerPort: 2368 },
      { pid: 777, protocol: 'udp', containerIp: 'fd00::2', containerPort: 5353 },
    ]);
  });

  test('ip -j route and addr', () => {
    const routes = parseIpRoute(
      '[{"dst":"default","gateway":"198.51.100.254","dev":"eth0","flags":[]},{"type":"blackhole","dst":"10.9.0.0/16","flags":[]},{"dst":"172.17.0.0/16","dev":"docker0","protocol":"kernel","scope":"link","prefsrc":"172.17.0.1","flags":[]}]',
      'ipv4',
    );
    expect(routes).toEqual([
      {
        family: 'ipv4',
        dst: '0.0.0.0/0',
        type: 'unicast',
        dev: 'eth0',
        gateway: '198.51.100.254',
        metric: 0,
      },
      { family: 'ipv4', dst: '10.9.0.0/16', type: 'blackhole', metric: 0 },
      {
        family: 'ipv4',
        dst: '172.17.0.0/16',
        type: 'unicast',
        dev: 'docker0',
        prefsrc: '172.17.0.1',
        metric: 0,
      },
    ]);
    const addr = parseIpAddr(
      '[{"ifindex":3,"ifname":"docker0","flags":["BROADCAST","MULTICAST","UP"],"addr_info":[{"family":"inet","local":"172.17.0.1","prefixlen":16,"broadcast":"172.17.255.255","scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]',
    );
    expect(addr).toEqual([
      {
        name: 'docker0',
        up: true,
        addresses: [
          {
            family: 'ipv4',
            address: '172.17.0.1',
            prefixLength: 16,
            broadcast: '172.17.255.255',
            scope: 'global',
          },
          { family: 'ipv6', address: 'fe80::1', prefixLength: 64, scope: 'link' },
        ],
      },
    ]);
  });

  test('routing rules beyond the default three are reported', () => {
    const defaults =
      '[{"priority":0,"src":"all","table":"local"},{"priority":32766,"src":"all","table":"main"},{"priority":32767,"src":"all","table":"default"}]';
    expect(extraRoutingRules(defaults, 'ipv4')).toEqual([]);
    const extra =
      '[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"all","fwmark":"0x1","table":"vpn"}]';
    expect(extraRoutingRules(extra, 'ipv4')).toEqual([
      'ipv4 {"priority":100,"src":"all","fwmark":"0x1","table":"vpn"}',
    ]);
  });

  test('sysctl, nft tables, Docker info', () => {
    expect(parseSysctl('net.ipv4.ip_forward = 1\nnet.ipv4.conf.br-1.route_localnet = 0\n')).toEqual(
      new Map([
        ['net.ipv4.ip_forward', '1'],
        ['net.ipv4.conf.br-1.route_localnet', '0'],
      ]),
    );
    expect(
      parseNftTables(
        '{"nftables":[{"metainfo":{"version":"1.0.6"}},{"table":{"family":"ip","name":"docker-bridges","handle":1}}]}',
      ),
    ).toEqual(['ip docker-bridges']);
    expect(
      parseDockerInfo('{"ServerVersion":"29.7.2","FirewallBackend":{"Driver":"nftables"}}'),
    ).toBe('nftables');
    expect(parseDockerInfo('{"ServerVersion":"20.10.24"}')).toBeUndefined();
  });

  test('malformed JSON is an error naming the source', () => {
    expect(() => parseIpRoute('{', 'ipv6')).toThrow('ip -j -6 route: not valid JSON');
  });
});

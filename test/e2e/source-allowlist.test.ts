/**
 * A published port open only to listed sources, by CIDR and by a managed ipset, over IPv4
 * (routed, after Docker's DNAT) and IPv6, with real packets. Before Docker 27 the IPv6 client
 * goes through docker-proxy on the host; from 27 on, ghost sits on an `--ipv6` network and Docker
 * DNATs IPv6 too (ip6tables on by default), so the IPv6 path is routed as well.
 *
 *   wan client addresses: 198.51.100.2 and .3, 2001:db8:100::2 and ::3 (host side .1 / ::1)
 */
import { expect, test } from '@jest/globals';
import { HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { describeOnDocker } from '../support/docker-targets.js';
import { useLab } from '../support/lab.js';
import { EMPTY } from '../support/policies.js';

const PORT = 2368;

const byCidr = (sources: readonly string[]) => `version: 1
containers:
  ghost:
    ingress:
      - ports: [${PORT}/tcp]
        from: [${sources.map((s) => `"${s}"`).join(', ')}]
`;

const byIpset = (entry: string) => `version: 1
ipsets:
  office:
    family: ipv4
    type: hash:net
    entries: [${entry}]
containers:
  ghost:
    ingress:
      - ports: [${PORT}/tcp]
        from: [ipset:office]
`;

describeOnDocker(
  ['20.10.24', '28.5.2', '29.7.2-nftables'],
  ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'],
  'source allowlist by CIDR and by ipset, end to end',
  (target) => {
    const lab = useLab({ target }, (lab) => {
      lab.sandbox.wan.exec('ip', ['addr', 'add', '198.51.100.3/24', 'dev', 'vd1']);
      lab.sandbox.wan.exec('ip', ['addr', 'add', '2001:db8:100::3/64', 'dev', 'vd1', 'nodad']);
      const network: string[] = [];
      if (target.ip6tablesByDefault) {
        lab.createNetwork('v6net', { subnet4: '172.31.0.0/24', subnet6: '2001:db8:31::/64' });
        network.push('--network', 'v6net');
      }
      lab.runHttpd('ghost', [`${PORT}:${PORT}`], network);
      lab.runHttpd('other', ['8081:80']);
    });
    const v4 = `http://${HOST_V4}:${PORT}/`;
    const v6 = `http://[${HOST_V6}]:${PORT}/`;
    const other = `http://${HOST_V4}:8081/`;

    /** A probe from the wan namespace, from one of its addresses. */
    const wanFrom = (address: string, url: string) =>
      [`${address} -> ${url}`, () => lab.wanReaches(url, address)] as const;
    const probe = (expected: boolean, [what, run]: readonly [string, () => boolean]) =>
      [what, expected, run] as const;

    test('before moat, every wan address reaches the port over IPv4 and IPv6', () => {
      lab.expectReachability([
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(true, wanFrom('198.51.100.3', v4)),
        probe(true, wanFrom('2001:db8:100::2', v6)),
        probe(true, wanFrom('2001:db8:100::3', v6)),
      ]);
    });

    test('from an IPv4 address: only that client, and no IPv6 client, reaches the port', () => {
      lab.applyConverged(byCidr(['198.51.100.2/32']));
      lab.expectReachability([
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(false, wanFrom('198.51.100.3', v4)),
        probe(false, wanFrom('2001:db8:100::2', v6)),
        probe(false, wanFrom('2001:db8:100::3', v6)),
        probe(true, wanFrom('198.51.100.3', other)),
      ]);
    });

    test('adding an IPv6 address to from lets exactly that IPv6 client in', () => {
      lab.applyConverged(byCidr(['198.51.100.2/32', '2001:db8:100::2/128']));
      lab.expectReachability([
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(false, wanFrom('198.51.100.3', v4)),
        probe(true, wanFrom('2001:db8:100::2', v6)),
        probe(false, wanFrom('2001:db8:100::3', v6)),
      ]);
    });

    test('from a managed ipset: its member reaches the port, others do not', () => {
      lab.applyConverged(byIpset('198.51.100.2'));
      expect(lab.ipsetSave()).toContain('add moat-office 198.51.100.2');
      lab.expectReachability([
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(false, wanFrom('198.51.100.3', v4)),
        // An ipv4 set allows no IPv6 client.
        probe(false, wanFrom('2001:db8:100::2', v6)),
      ]);
    });

    test('changing the set members flips who reaches the port', () => {
      lab.applyConverged(byIpset('198.51.100.3'));
      const sets = lab.ipsetSave();
      expect(sets).toContain('add moat-office 198.51.100.3');
      expect(sets).not.toContain('198.51.100.2');
      expect(sets).not.toContain('.swp');
      lab.expectReachability([
        probe(false, wanFrom('198.51.100.2', v4)),
        probe(true, wanFrom('198.51.100.3', v4)),
      ]);
    });

    test('removing the policy opens the port to everyone again', () => {
      lab.applyConverged(EMPTY);
      expect(lab.ipsetSave()).not.toContain('moat-');
      lab.expectReachability([
        probe(true, wanFrom('198.51.100.3', v4)),
        probe(true, wanFrom('2001:db8:100::3', v6)),
      ]);
    });
  },
);

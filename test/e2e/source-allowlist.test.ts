/**
 * A published port open only to listed sources, by CIDR and by a managed ipset, over IPv4
 * (routed, after Docker's DNAT) and IPv6 (through docker-proxy on the host), with real packets.
 *
 *   wan client addresses: 198.51.100.2 and .3, 2001:db8:100::2 and ::3 (host side .1 / ::1)
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DockerSandbox, HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { applyConverged, expectReachability } from '../support/e2e-moat.js';
import { PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';
import { EMPTY } from '../support/policies.js';
import { httpStatusIn } from '../support/reach.js';

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

describeWith(
  ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'],
  'source allowlist by CIDR and by ipset, end to end',
  () => {
    let sandbox: DockerSandbox;
    const policy = new PolicyDir();
    const v4 = `http://${HOST_V4}:${PORT}/`;
    const v6 = `http://[${HOST_V6}]:${PORT}/`;
    const other = `http://${HOST_V4}:8081/`;

    /** A probe from the wan namespace, from one of its addresses. */
    const wanFrom = (address: string, url: string) =>
      [`${address} -> ${url}`, () => httpStatusIn(sandbox.wan, url, address) !== '000'] as const;
    const probe = (expected: boolean, [what, run]: readonly [string, () => boolean]) =>
      [what, expected, run] as const;

    beforeAll(async () => {
      sandbox = await DockerSandbox.start();
      sandbox.wan.exec('ip', ['addr', 'add', '198.51.100.3/24', 'dev', 'vd1']);
      sandbox.wan.exec('ip', ['addr', 'add', '2001:db8:100::3/64', 'dev', 'vd1', 'nodad']);
      sandbox.runHttpd('ghost', [`${PORT}:${PORT}`]);
      sandbox.runHttpd('other', ['8081:80']);
    }, 180_000);

    afterAll(async () => {
      try {
        await (sandbox as DockerSandbox | undefined)?.stop();
      } finally {
        policy.remove();
      }
    }, 120_000);

    test('before moat, every wan address reaches the port over IPv4 and IPv6', () => {
      expectReachability(sandbox, [
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(true, wanFrom('198.51.100.3', v4)),
        probe(true, wanFrom('2001:db8:100::2', v6)),
        probe(true, wanFrom('2001:db8:100::3', v6)),
      ]);
    });

    test('from an IPv4 address: only that client, and no IPv6 client, reaches the port', () => {
      applyConverged(sandbox, policy, byCidr(['198.51.100.2/32']));
      expectReachability(sandbox, [
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(false, wanFrom('198.51.100.3', v4)),
        probe(false, wanFrom('2001:db8:100::2', v6)),
        probe(false, wanFrom('2001:db8:100::3', v6)),
        probe(true, wanFrom('198.51.100.3', other)),
      ]);
    });

    test('adding an IPv6 address to from lets exactly that IPv6 client in', () => {
      applyConverged(sandbox, policy, byCidr(['198.51.100.2/32', '2001:db8:100::2/128']));
      expectReachability(sandbox, [
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(false, wanFrom('198.51.100.3', v4)),
        probe(true, wanFrom('2001:db8:100::2', v6)),
        probe(false, wanFrom('2001:db8:100::3', v6)),
      ]);
    });

    test('from a managed ipset: its member reaches the port, others do not', () => {
      applyConverged(sandbox, policy, byIpset('198.51.100.2'));
      expect(sandbox.execInHost('ipset', ['save']).stdout).toContain(
        'add moat-office 198.51.100.2',
      );
      expectReachability(sandbox, [
        probe(true, wanFrom('198.51.100.2', v4)),
        probe(false, wanFrom('198.51.100.3', v4)),
        // An ipv4 set allows no IPv6 client.
        probe(false, wanFrom('2001:db8:100::2', v6)),
      ]);
    });

    test('changing the set members flips who reaches the port', () => {
      applyConverged(sandbox, policy, byIpset('198.51.100.3'));
      const sets = sandbox.execInHost('ipset', ['save']).stdout;
      expect(sets).toContain('add moat-office 198.51.100.3');
      expect(sets).not.toContain('198.51.100.2');
      expect(sets).not.toContain('.swp');
      expectReachability(sandbox, [
        probe(false, wanFrom('198.51.100.2', v4)),
        probe(true, wanFrom('198.51.100.3', v4)),
      ]);
    });

    test('removing the policy opens the port to everyone again', () => {
      applyConverged(sandbox, policy, EMPTY);
      expect(sandbox.execInHost('ipset', ['save']).stdout).not.toContain('moat-');
      expectReachability(sandbox, [
        probe(true, wanFrom('198.51.100.3', v4)),
        probe(true, wanFrom('2001:db8:100::3', v6)),
      ]);
    });
  },
);

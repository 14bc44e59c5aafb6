/**
 * Docker's gateway modes (27+) with real packets: a network in mode `routed` has no NAT (its
 * containers are reached at their own addresses), one in `nat-unprotected` is DNATed and also
 * reached at the containers' addresses on every port. "Host only" and "from: [CIDR]" must mean
 * the same on every path Docker opens, over IPv4 and IPv6, and `defaults.ingress: host` closes
 * the ports no rule names. The wan client routes to the containers' subnets through the host.
 */
import { expect, test } from '@jest/globals';
import { describeOnDocker } from '../support/docker-targets.js';
import { useLab } from '../support/lab.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'] as const;

const policy = (from: string, defaults = ''): string => `version: 1
${defaults}containers:
  routed-web:
    ingress:
      - ports: [80/tcp]
        from: ${from}
  unprot-web:
    ingress:
      - ports: [8092/tcp]
        from: ${from}
`;

describeOnDocker(['28.5.2', '29.7.2-nftables'], NEEDS, 'gateway modes', (target) => {
  const lab = useLab({ target }, (lab) => {
    lab.createNetwork('routed', {
      subnet4: '172.28.0.0/24',
      subnet6: '2001:db8:28::/64',
      gatewayMode4: 'routed',
      gatewayMode6: 'routed',
    });
    lab.createNetwork('unprot', {
      subnet4: '172.27.0.0/24',
      subnet6: '2001:db8:27::/64',
      gatewayMode4: 'nat-unprotected',
      gatewayMode6: 'nat-unprotected',
    });
    lab.runHttpd('routed-web', ['8091:80'], ['--network', 'routed'], 80);
    lab.runHttpd('unprot-web', ['8092:80'], ['--network', 'unprot'], 80);
    lab.runHttpd('unprot-extra', [], ['--network', 'unprot'], 81);
  });

  test('before any policy, every path is open: the test can tell open from closed', async () => {
    lab.applyConverged('version: 1\n');
    await lab.expectPortReach('routed-web', 80, { direct: { ipv4: true, ipv6: true } });
    await lab.expectPortReach('unprot-web', 80, {
      published: { ipv4: true, ipv6: true },
      direct: { ipv4: true, ipv6: true },
    });
    // An unpublished port: Docker 28 lets IPv6 in at the address (its IPv4 drop is its own).
    await lab.expectPortReach('unprot-extra', 81, { direct: { ipv6: true } });
  });

  test('host only: closed at the host port and at the container addresses, IPv4 and IPv6', async () => {
    lab.applyConverged(policy('[host]'));
    await lab.expectPortReach('routed-web', 80, { direct: { ipv4: false, ipv6: false } });
    await lab.expectPortReach('unprot-web', 80, {
      published: { ipv4: false, ipv6: false },
      direct: { ipv4: false, ipv6: false },
    });
    const plan = lab.moat(['plan', '-f', lab.policy.file]);
    // Docker 29 lists no routed binding; moat reads it from the container's own answer.
    const doc = JSON.parse(lab.moat(['plan', '-f', lab.policy.file, '--json']).stdout) as {
      exposures: { container: string; via: string; port: number }[];
    };
    expect(doc.exposures.filter((e) => e.container === 'routed-web')).toEqual([
      expect.objectContaining({ via: 'routed', port: 80 }),
    ]);
    expect(plan.stdout).toContain('nat-unprotected');
    expect(plan.stdout).not.toContain('Contradicted');
  });

  test('from the wan block: exactly that block gets in, on every path', async () => {
    lab.applyConverged(policy('[198.51.100.0/24, "2001:db8:100::/64"]'));
    await lab.expectPortReach('routed-web', 80, { direct: { ipv4: true, ipv6: true } });
    await lab.expectPortReach('unprot-web', 80, {
      published: { ipv4: true, ipv6: true },
      direct: { ipv4: true, ipv6: true },
    });
    lab.applyConverged(policy('[203.0.113.0/24, "2001:db8:203::/64"]'));
    await lab.expectPortReach('routed-web', 80, { direct: { ipv4: false, ipv6: false } });
    await lab.expectPortReach('unprot-web', 80, {
      published: { ipv4: false, ipv6: false },
      direct: { ipv4: false, ipv6: false },
    });
  });

  test('defaults.ingress: host closes a port no rule names at a nat-unprotected address', async () => {
    lab.applyConverged(policy('[host]', 'defaults:\n  ingress: host\n'));
    await lab.expectPortReach('unprot-extra', 81, { direct: { ipv4: false, ipv6: false } });
    lab.applyConverged('version: 1\n');
    await lab.expectPortReach('unprot-extra', 81, { direct: { ipv6: true } });
  });
});

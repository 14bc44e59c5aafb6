/**
 * `moat explain` on a real Docker host for the seed's three scenarios (a container kept off an
 * internal network, egress only to an allowlist ipset, a port for the host only): the built
 * CLI's verdict, trail and policy line, each checked against a real packet. `--after-plan`
 * predicts the same verdicts before the apply.
 *
 *   internal  192.0.2.0/24    server 192.0.2.10
 *   outside   203.0.113.0/24  servers 203.0.113.10 and .20
 *   wan       198.51.100.2 and 2001:db8:100::2
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { applyConverged } from '../support/e2e-moat.js';
import { Destination } from '../support/lan.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';
import { httpFromContainer } from '../support/reach.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'] as const;

const POLICY = `version: 1
ipsets:
  allowed:
    family: ipv4
    type: hash:net
    entries: [203.0.113.10]
containers:
  webapp:
    egress:
      deny:
        - to: [192.0.2.0/24]
  mailer:
    egress:
      default: deny
      allow:
        - to: [ipset:allowed]
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host]
`;

describeWith(NEEDS, 'moat explain on a real host: the seed scenarios', () => {
  let sandbox: DockerSandbox;
  const destinations: Destination[] = [];
  const policy = new PolicyDir();

  beforeAll(async () => {
    sandbox = await DockerSandbox.start();
    destinations.push(new Destination(sandbox.host, '192.0.2.1/24', ['192.0.2.10/24']));
    destinations.push(
      new Destination(sandbox.host, '203.0.113.1/24', ['203.0.113.10/24', '203.0.113.20/24']),
    );
    sandbox.docker(['run', '-d', '--name', 'webapp', 'moat-test/busybox', 'sleep', '3600']);
    sandbox.runHttpd('mailer', ['8080:80']);
    sandbox.runHttpd('ghost', ['2368:2368']);
    policy.write(POLICY);
  }, 180_000);

  afterAll(async () => {
    for (const d of destinations) d.destroy();
    policy.remove();
    await sandbox.stop();
  }, 120_000);

  const explain = (from: string, to: string, ...more: string[]) => {
    const r = moat(
      sandbox,
      ['explain', '-f', policy.file, '--from', from, '--to', to, ...more],
      sandbox.env,
    );
    if (r.status !== 0) throw new Error(`moat explain exited ${r.status}: ${r.stderr}`);
    return r.stdout;
  };
  const at = (line: number, column: number, what: string) =>
    `[${policy.file}:${line}:${column} ${what}]`;

  test('--after-plan predicts each scenario before anything is applied', () => {
    expect(explain('container:webapp', '192.0.2.10:80/tcp')).toContain('IPv4: reachable');
    expect(explain('container:webapp', '192.0.2.10:80/tcp', '--after-plan')).toContain(
      'IPv4: blocked',
    );
    expect(explain('container:mailer', '203.0.113.20:80/tcp', '--after-plan')).toContain(
      'IPv4: blocked',
    );
    expect(explain('198.51.100.2', 'ghost:2368/tcp', '--after-plan')).toContain('IPv4: blocked');
  });

  test('a container kept off an internal network', () => {
    applyConverged(sandbox, policy, POLICY);
    const internal = explain('container:webapp', '192.0.2.10:80/tcp');
    expect(internal).toContain('IPv4: blocked');
    expect(internal).toMatch(/filter MOAT-EGR-\w+ #1: -d 192\.0\.2\.0\/24 .*-j DROP {2}→ DROP/);
    expect(internal).toContain(at(11, 11, 'webapp egress deny rule 1'));
    expect(httpFromContainer(sandbox, 'webapp', '192.0.2.10')).toBe(false);
    expect(explain('container:webapp', '203.0.113.10:80/tcp')).toContain('IPv4: reachable');
    expect(httpFromContainer(sandbox, 'webapp', '203.0.113.10')).toBe(true);
  });

  test('egress only to an allowlist ipset', () => {
    const denied = explain('container:mailer', '203.0.113.20:80/tcp');
    expect(denied).toContain('IPv4: blocked');
    expect(denied).toContain(at(14, 16, 'mailer egress default'));
    expect(httpFromContainer(sandbox, 'mailer', '203.0.113.20')).toBe(false);
    const allowed = explain('container:mailer', '203.0.113.10:80/tcp');
    expect(allowed).toContain('IPv4: reachable');
    expect(allowed).toMatch(/--match-set moat-allowed dst -j RETURN {2}→ RETURN/);
    expect(allowed).toContain(at(16, 11, 'mailer egress allow rule 1'));
    expect(httpFromContainer(sandbox, 'mailer', '203.0.113.10')).toBe(true);
  });

  test('a port for the host only, over IPv4 (DNAT) and IPv6 (docker-proxy)', () => {
    const v4 = explain('198.51.100.2', 'ghost:2368/tcp');
    expect(v4).toContain('IPv4: blocked');
    expect(v4).toMatch(/MOAT-INGRESS #\d+: .*--ctorigdstport 2368 -j DROP {2}→ DROP/);
    expect(v4).toContain(at(19, 9, 'ghost ingress rule 1'));
    expect(sandbox.httpStatusFromWan('http://198.51.100.1:2368/')).toBe('000');
    const v6 = explain('2001:db8:100::2', 'ghost:2368/tcp');
    expect(v6).toContain('IPv6: blocked');
    expect(v6).toMatch(/filter MOAT-INPUT #\d+: .*--dport 2368 -j DROP {2}→ DROP/);
    expect(sandbox.httpStatusFromWan('http://[2001:db8:100::1]:2368/')).toBe('000');
    const host = explain('host', 'ghost:2368/tcp');
    expect(host).toMatch(/IPv4: reachable[\s\S]*IPv6: reachable/);
    expect(sandbox.httpStatusFromHost('http://198.51.100.1:2368/')).not.toBe('000');
    expect(sandbox.httpStatusFromHost('http://[2001:db8:100::1]:2368/')).not.toBe('000');
  });
});

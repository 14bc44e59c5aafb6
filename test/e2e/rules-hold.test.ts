/**
 * What the rules promise, proven with real packets on a real dockerd:
 *   - rules naming the same port add up (two rules, and a range with a port inside it);
 *   - defaults hold for a container started after the last apply, from its first packet,
 *     without moat running again (ingress and egress);
 *   - a rule never restricts a port a host program listens on unless it says so.
 * The wan client has extra addresses so one namespace can be an allowed and a refused client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, expect, test } from '@jest/globals';
import { HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { describeOnDocker } from '../support/docker-targets.js';
import { useLab } from '../support/lab.js';
import { EMPTY } from '../support/policies.js';
import { httpFromContainer, httpStatusIn } from '../support/reach.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'] as const;

/** Extra wan addresses: in and out of the blocks the policies below allow. */
const IN_V4 = '198.51.100.20'; // in 198.51.100.0/27
const OUT_V4 = '198.51.100.200';
const IN_V6 = '2001:db8:100::20'; // in 2001:db8:100::/120
const OUT_V6 = '2001:db8:100::2:1';

describeOnDocker(
  ['20.10.24', '28.5.2'],
  NEEDS,
  'rules add up, defaults need no inventory, host services are never caught',
  (target) => {
    const lab = useLab({ target, destinations: true }, (lab) => {
      const wan = lab.sandbox.wan;
      for (const a of [`${IN_V4}/24`, `${OUT_V4}/24`])
        wan.exec('ip', ['addr', 'add', a, 'dev', 'vd1']);
      for (const a of [`${IN_V6}/64`, `${OUT_V6}/64`])
        wan.exec('ip', ['addr', 'add', a, 'dev', 'vd1', 'nodad']);
      lab.runHttpd('ghost', ['2368:2368']);
      lab.runHttpd('app-a', ['8080:80']);
      lab.runHttpd('app-b', ['8081:80']);
    });
    const policy = lab.policy;
    let service: ChildProcess | undefined;

    const wanReaches = (url: string, from?: string) => () =>
      httpStatusIn(lab.sandbox.wan, url, from) !== '000';
    const v4 = (port: number) => `http://${HOST_V4}:${port}/`;
    const v6 = (port: number) => `http://[${HOST_V6}]:${port}/`;

    afterAll(() => {
      if (service?.pid !== undefined) {
        try {
          process.kill(service.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });

    test('two rules naming one port: a client either allows gets in, over IPv4 and IPv6', () => {
      lab.applyConverged(`version: 1
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [198.51.100.0/27, "2001:db8:100::/120"]
      - ports: [2368/tcp]
        from: [198.51.100.2, "2001:db8:100::2"]
`);
      lab.expectReachability([
        ['198.51.100.2 (second rule) -> 2368', true, wanReaches(v4(2368), '198.51.100.2')],
        [`${IN_V4} (first rule) -> 2368`, true, wanReaches(v4(2368), IN_V4)],
        [`${OUT_V4} (neither) -> 2368`, false, wanReaches(v4(2368), OUT_V4)],
        ['2001:db8:100::2 (second rule) -> 2368', true, wanReaches(v6(2368), '2001:db8:100::2')],
        [`${IN_V6} (first rule) -> 2368`, true, wanReaches(v6(2368), IN_V6)],
        [`${OUT_V6} (neither) -> 2368`, false, wanReaches(v6(2368), OUT_V6)],
      ]);
    });

    test('a range and a port inside it, in two groups: their sources add up on the overlap', () => {
      lab.applyConverged(`version: 1
containers:
  app:
    select: {name: [app-a, app-b]}
    ingress:
      - ports: [8000-8100/tcp]
        from: [198.51.100.2]
  admin:
    select: {name: app-a}
    ingress:
      - ports: [8080/tcp]
        from: [${IN_V4}]
`);
      lab.expectReachability([
        ['198.51.100.2 -> 8080 (range)', true, wanReaches(v4(8080), '198.51.100.2')],
        ['198.51.100.2 -> 8081 (range)', true, wanReaches(v4(8081), '198.51.100.2')],
        [`${IN_V4} -> 8080 (port)`, true, wanReaches(v4(8080), IN_V4)],
        [`${IN_V4} -> 8081 (range only)`, false, wanReaches(v4(8081), IN_V4)],
        [`${OUT_V4} -> 8080`, false, wanReaches(v4(8080), OUT_V4)],
      ]);
    });

    test('defaults hold a container started after the apply, with no moat run in between', () => {
      lab.applyConverged(`version: 1
defaults:
  ingress: host
  egress: deny
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [any]
`);
      lab.sandbox.runHttpd('late', ['9191:80']);
      lab.expectReachability([
        ['wan -> ghost 2368 (a rule opens it)', true, wanReaches(v4(2368))],
        ['wan -> late 9191 over IPv4 (defaults)', false, wanReaches(v4(9191))],
        [
          'late -> 203.0.113.10 (defaults.egress)',
          false,
          () => httpFromContainer(lab.sandbox, 'late', '203.0.113.10'),
        ],
        ['host -> late 9191', true, () => lab.sandbox.httpStatusFromHost(v4(9191)) !== '000'],
      ]);
      // The one path keyed on ports: docker-proxy for IPv6 clients of an IPv4-only container.
      // The plan says so, and the next apply closes it.
      const plan = lab.moat(['plan', '-f', policy.file]);
      expect(plan.stdout).toContain(
        'late 9191/tcp: reachable from host only (was: host only (IPv4); anyone (IPv6 through docker-proxy))',
      );
      lab.expectReachability([
        ['wan -> late 9191 over IPv6 until then', true, wanReaches(v6(9191))],
      ]);
      expect(plan.stdout).toContain('userland-proxy');
      lab.applyConverged(policy.read());
      lab.expectReachability([['wan -> late 9191 over IPv6', false, wanReaches(v6(9191))]]);
      lab.sandbox.docker(['rm', '-f', 'late']);
    });

    // Docker 27+ DNATs IPv6 for a network made with --ipv6: the defaults hold there from the
    // first packet too, with no docker-proxy path to wait for.
    if (target.gatewayModes)
      test('defaults hold a late container on an --ipv6 network over IPv6 DNAT, with no moat run', () => {
        lab.applyConverged('version: 1\ndefaults:\n  ingress: host\n');
        lab.createNetwork('late6net', { subnet4: '172.29.0.0/24', subnet6: 'fd00:db8:29::/64' });
        lab.sandbox.runHttpd('late6', ['9393:80'], ['--network', 'late6net']);
        try {
          lab.expectReachability([
            ['wan -> late6 9393 over IPv6 (DNAT, defaults)', false, wanReaches(v6(9393))],
            ['wan -> late6 9393 over IPv4 (defaults)', false, wanReaches(v4(9393))],
            ['host -> late6 9393', true, () => lab.sandbox.httpStatusFromHost(v4(9393)) !== '000'],
          ]);
          lab.applyConverged('version: 1\n');
          lab.expectReachability([
            ['wan -> late6 9393 over IPv6 once the defaults allow', true, wanReaches(v6(9393))],
          ]);
        } finally {
          lab.sandbox.docker(['rm', '-f', 'late6']);
        }
      });

    test("a foreign ACCEPT before moat's hook: packets get in, and plan says its words are contradicted", () => {
      lab.applyConverged(`version: 1
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host]
`);
      lab.expectReachability([['wan -> ghost 2368', false, wanReaches(v4(2368))]]);
      const foreign = ['FORWARD', '-o', 'docker0', '-p', 'tcp', '--dport', '2368', '-j', 'ACCEPT'];
      lab.sandbox.host.exec('iptables', ['-I', ...foreign.slice(0, 1), '1', ...foreign.slice(1)]);
      try {
        lab.expectReachability([
          ['wan -> ghost 2368 past the foreign ACCEPT', true, wanReaches(v4(2368))],
        ]);
        const plan = lab.moat(['plan', '-f', policy.file]);
        expect(plan.status).toBe(1);
        expect(plan.stdout).toMatch(
          /✗ ghost 2368\/tcp over IPv4: the plan says host only, yet [0-9a-f.:]+ gets in .*decided by filter FORWARD #1: -o docker0 -p tcp -m tcp --dport 2368 -j ACCEPT\)/,
        );
        expect(plan.stdout).not.toMatch(/over IPv6: the plan says/);
        expect(plan.stderr).toContain("the plan's reach is contradicted");
      } finally {
        lab.sandbox.host.exec('iptables', ['-D', ...foreign]);
      }
      const clean = lab.moat(['plan', '-f', policy.file]);
      expect({ status: clean.status, stdout: clean.stdout }).toEqual({
        status: 0,
        stdout: expect.not.stringContaining('Contradicted') as unknown as string,
      });
    });

    test('a rule naming a port where a host program listens is refused, and changes nothing', async () => {
      lab.applyConverged(EMPTY);
      service = spawn(
        'nsenter',
        [`--net=${lab.sandbox.host.path}`, 'busybox', 'httpd', '-f', '-p', '2222', '-h', '/'],
        { stdio: 'ignore' },
      );
      const reachable = () => httpStatusIn(lab.sandbox.wan, v4(2222)) !== '000';
      for (let i = 0; i < 50 && !reachable(); i++) await new Promise((r) => setTimeout(r, 100));
      const firewall = () => lab.firewall().replace(/^# .*\n/gm, '');
      const before = firewall();
      const ssh = (extra: string) => `version: 1
containers:
  ghost:
    ingress:
      - ports: [2222/tcp]
        from: [203.0.113.0/24]
${extra}`;
      const refused = lab.moat(['apply', '-f', policy.write(ssh('')), '--auto-approve']);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        /2222\/tcp is where busybox \(pid \d+, tcp (0\.0\.0\.0|\[::\]):2222\) listens/,
      );
      expect(refused.stderr).toContain('restrict_host_services: true');
      expect(firewall()).toBe(before);
      lab.expectReachability([['wan -> host service 2222', true, reachable]]);

      lab.applyConverged(ssh('        restrict_host_services: true\n'));
      lab.expectReachability([['wan -> host service 2222, deliberately', false, reachable]]);
      lab.applyConverged(EMPTY);
    });
  },
);

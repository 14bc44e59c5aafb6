/**
 * What the rules promise, proven with real packets on a real dockerd:
 *   - rules naming the same port add up (two rules, and a range with a port inside it);
 *   - defaults hold for a container started after the last apply, from its first packet,
 *     without moat running again (ingress and egress);
 *   - a rule never restricts a port a host program listens on unless it says so.
 * The wan client has extra addresses so one namespace can be an allowed and a refused client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DockerSandbox, HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { applyConverged, expectReachability, rulesets } from '../support/e2e-moat.js';
import { Destination } from '../support/lan.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { EMPTY } from '../support/policies.js';
import { describeWith } from '../support/prereq.js';
import { httpFromContainer, httpStatusIn } from '../support/reach.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'] as const;

/** Extra wan addresses: in and out of the blocks the policies below allow. */
const IN_V4 = '198.51.100.20'; // in 198.51.100.0/27
const OUT_V4 = '198.51.100.200';
const IN_V6 = '2001:db8:100::20'; // in 2001:db8:100::/120
const OUT_V6 = '2001:db8:100::2:1';

describeWith(
  NEEDS,
  'rules add up, defaults need no inventory, host services are never caught',
  () => {
    let sandbox: DockerSandbox;
    const policy = new PolicyDir();
    let outside: Destination | undefined;
    let service: ChildProcess | undefined;

    const wanReaches = (url: string, from?: string) => () =>
      httpStatusIn(sandbox.wan, url, from) !== '000';
    const v4 = (port: number) => `http://${HOST_V4}:${port}/`;
    const v6 = (port: number) => `http://[${HOST_V6}]:${port}/`;

    beforeAll(async () => {
      sandbox = await DockerSandbox.start();
      for (const a of [`${IN_V4}/24`, `${OUT_V4}/24`])
        sandbox.wan.exec('ip', ['addr', 'add', a, 'dev', 'vd1']);
      for (const a of [`${IN_V6}/64`, `${OUT_V6}/64`])
        sandbox.wan.exec('ip', ['addr', 'add', a, 'dev', 'vd1', 'nodad']);
      outside = new Destination(sandbox.host, '203.0.113.1/24', ['203.0.113.10/24']);
      sandbox.runHttpd('ghost', ['2368:2368']);
      sandbox.runHttpd('app-a', ['8080:80']);
      sandbox.runHttpd('app-b', ['8081:80']);
    }, 240_000);

    afterAll(async () => {
      if (service?.pid !== undefined) {
        try {
          process.kill(service.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      outside?.destroy();
      policy.remove();
      await sandbox.stop();
    }, 120_000);

    test('two rules naming one port: a client either allows gets in, over IPv4 and IPv6', () => {
      applyConverged(
        sandbox,
        policy,
        `version: 1
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [198.51.100.0/27, "2001:db8:100::/120"]
      - ports: [2368/tcp]
        from: [198.51.100.2, "2001:db8:100::2"]
`,
      );
      expectReachability(sandbox, [
        ['198.51.100.2 (second rule) -> 2368', true, wanReaches(v4(2368), '198.51.100.2')],
        [`${IN_V4} (first rule) -> 2368`, true, wanReaches(v4(2368), IN_V4)],
        [`${OUT_V4} (neither) -> 2368`, false, wanReaches(v4(2368), OUT_V4)],
        ['2001:db8:100::2 (second rule) -> 2368', true, wanReaches(v6(2368), '2001:db8:100::2')],
        [`${IN_V6} (first rule) -> 2368`, true, wanReaches(v6(2368), IN_V6)],
        [`${OUT_V6} (neither) -> 2368`, false, wanReaches(v6(2368), OUT_V6)],
      ]);
    });

    test('a range and a port inside it, in two groups: their sources add up on the overlap', () => {
      applyConverged(
        sandbox,
        policy,
        `version: 1
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
`,
      );
      expectReachability(sandbox, [
        ['198.51.100.2 -> 8080 (range)', true, wanReaches(v4(8080), '198.51.100.2')],
        ['198.51.100.2 -> 8081 (range)', true, wanReaches(v4(8081), '198.51.100.2')],
        [`${IN_V4} -> 8080 (port)`, true, wanReaches(v4(8080), IN_V4)],
        [`${IN_V4} -> 8081 (range only)`, false, wanReaches(v4(8081), IN_V4)],
        [`${OUT_V4} -> 8080`, false, wanReaches(v4(8080), OUT_V4)],
      ]);
    });

    test('defaults hold a container started after the apply, with no moat run in between', () => {
      applyConverged(
        sandbox,
        policy,
        `version: 1
defaults:
  ingress: host
  egress: deny
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [any]
`,
      );
      sandbox.runHttpd('late', ['9191:80']);
      expectReachability(sandbox, [
        ['wan -> ghost 2368 (a rule opens it)', true, wanReaches(v4(2368))],
        ['wan -> late 9191 over IPv4 (defaults)', false, wanReaches(v4(9191))],
        [
          'late -> 203.0.113.10 (defaults.egress)',
          false,
          () => httpFromContainer(sandbox, 'late', '203.0.113.10'),
        ],
        ['host -> late 9191', true, () => sandbox.httpStatusFromHost(v4(9191)) !== '000'],
      ]);
      // The one path keyed on ports: docker-proxy for IPv6 clients of an IPv4-only container.
      // The plan says so, and the next apply closes it.
      const plan = moat(sandbox, ['plan', '-f', policy.file], sandbox.env);
      expect(plan.stdout).toContain(
        'late 9191/tcp: reachable from host only (was: host only (IPv4); anyone (IPv6 through docker-proxy))',
      );
      expectReachability(sandbox, [
        ['wan -> late 9191 over IPv6 until then', true, wanReaches(v6(9191))],
      ]);
      expect(plan.stdout).toContain('userland-proxy');
      applyConverged(sandbox, policy, policy.read());
      expectReachability(sandbox, [['wan -> late 9191 over IPv6', false, wanReaches(v6(9191))]]);
      sandbox.docker(['rm', '-f', 'late']);
    });

    test('a rule naming a port where a host program listens is refused, and changes nothing', async () => {
      applyConverged(sandbox, policy, EMPTY);
      service = spawn(
        'nsenter',
        [`--net=${sandbox.host.path}`, 'busybox', 'httpd', '-f', '-p', '2222', '-h', '/'],
        { stdio: 'ignore' },
      );
      const reachable = () => httpStatusIn(sandbox.wan, v4(2222)) !== '000';
      for (let i = 0; i < 50 && !reachable(); i++) await new Promise((r) => setTimeout(r, 100));
      const firewall = () => rulesets(sandbox).replace(/^# .*\n/gm, '');
      const before = firewall();
      const ssh = (extra: string) => `version: 1
containers:
  ghost:
    ingress:
      - ports: [2222/tcp]
        from: [203.0.113.0/24]
${extra}`;
      const refused = moat(
        sandbox,
        ['apply', '-f', policy.write(ssh('')), '--auto-approve'],
        sandbox.env,
      );
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        /2222\/tcp is where busybox \(pid \d+, tcp (0\.0\.0\.0|\[::\]):2222\) listens/,
      );
      expect(refused.stderr).toContain('restrict_host_services: true');
      expect(firewall()).toBe(before);
      expectReachability(sandbox, [['wan -> host service 2222', true, reachable]]);

      applyConverged(sandbox, policy, ssh('        restrict_host_services: true\n'));
      expectReachability(sandbox, [['wan -> host service 2222, deliberately', false, reachable]]);
      applyConverged(sandbox, policy, EMPTY);
    });
  },
);

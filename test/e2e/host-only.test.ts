/**
 * The walking skeleton end to end, with real packets: a real dockerd in its own namespace, a
 * client in another, and the built CLI. "Only the host can reach this port" over IPv4 and IPv6.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';
import { EMPTY, HOST_ONLY } from '../support/policies.js';

const USER_RULE = ['-s', '192.0.2.99/32', '-j', 'DROP'];

const reached = (status: string): boolean => status !== '000';

describeWith(
  ['root', 'dockerd', 'iptables', 'ip', 'busybox', 'curl'],
  'host-only port, end to end',
  () => {
    let sandbox: DockerSandbox;
    const policy = new PolicyDir();
    const v4 = 'http://198.51.100.1:2368/';
    const v6 = 'http://[2001:db8:100::1]:2368/';
    const other = 'http://198.51.100.1:8081/';

    const run = (args: string[]) => moat(sandbox, args, sandbox.env);
    const save = () => sandbox.execInHost('iptables-save', ['-t', 'filter']).stdout;

    beforeAll(async () => {
      sandbox = await DockerSandbox.start();
      sandbox.runHttpd('ghost', ['2368:2368'], [], 2368);
      sandbox.runHttpd('other', ['8081:80'], [], 80);
      const added = sandbox.execInHost('iptables', ['-I', 'DOCKER-USER', ...USER_RULE]);
      if (added.status !== 0) throw new Error(added.stderr);
    }, 180_000);

    afterAll(async () => {
      // Undefined when start() itself failed (it cleans up after itself then).
      await (sandbox as DockerSandbox | undefined)?.stop();
      policy.remove();
    }, 120_000);

    test('before moat, the outside reaches the published port over IPv4 and IPv6', () => {
      expect(reached(sandbox.httpStatusFromWan(v4))).toBe(true);
      expect(reached(sandbox.httpStatusFromWan(v6))).toBe(true);
    });

    test('plan shows the change and exits 2 with --detailed-exitcode', () => {
      const result = run(['plan', '-f', policy.write(HOST_ONLY), '--detailed-exitcode']);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(2);
      expect(result.stdout).toContain('ghost 2368/tcp: reachable from host only (was: anyone)');
    });

    test('apply makes the port host-only: the outside is refused, the host and other ports are not', () => {
      const result = run(['apply', '-f', policy.file, '--auto-approve']);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(/Apply complete: \d+ added, 0 changed, 0 destroyed\./);

      expect(sandbox.httpStatusFromWan(v4)).toBe('000');
      expect(sandbox.httpStatusFromWan(v6)).toBe('000');
      expect(reached(sandbox.httpStatusFromHost('http://127.0.0.1:2368/'))).toBe(true);
      expect(reached(sandbox.httpStatusFromHost(v4))).toBe(true);
      expect(reached(sandbox.httpStatusFromWan(other))).toBe(true);
    });

    test('a second plan is empty, and the user rule in DOCKER-USER survived', () => {
      const result = run(['plan', '-f', policy.file, '--detailed-exitcode']);
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('No changes. The host matches firewall.yaml.');
      expect(save()).toContain('-A DOCKER-USER -s 192.0.2.99/32 -j DROP');
      const rules = save()
        .split('\n')
        .filter((l) => l.startsWith('-A DOCKER-USER'));
      expect(rules[0]).toMatch(/moat:[0-9a-f]+.* -j MOAT-FORWARD$/);
    });

    test('a snapshot of the host plans exactly like the host itself', () => {
      const dir = `${policy.dir}/snapshot`;
      const taken = run(['snapshot', '--out', dir]);
      expect(taken.stderr).toBe('');
      expect(taken.status).toBe(0);
      sandbox.docker([
        'run',
        '-d',
        '--name',
        'late',
        '-p',
        '8082:80',
        'moat-test/busybox',
        'sleep',
        '600',
      ]);
      const fromHost = run(['plan', '-f', policy.file, '--json']);
      const fromSnapshot = run(['plan', '-f', policy.file, '--json', '--snapshot', dir]);
      // The container started after the snapshot is the one difference: a new warning.
      expect(fromHost.stdout).toContain('late publishes 8082/tcp');
      expect(fromSnapshot.stdout).not.toContain('late');
      sandbox.docker(['rm', '-f', 'late']);
      expect(run(['plan', '-f', policy.file, '--json']).stdout).toBe(fromSnapshot.stdout);
    });

    test('protection holds when the container gets a new address on another network', () => {
      sandbox.docker(['network', 'create', '--subnet', '172.30.0.0/24', 'appnet']);
      sandbox.docker(['network', 'connect', 'appnet', 'ghost']);
      expect(sandbox.httpStatusFromWan(v4)).toBe('000');
      expect(reached(sandbox.httpStatusFromHost('http://127.0.0.1:2368/'))).toBe(true);
    });

    test('drift: a flushed moat chain is reported and repaired', () => {
      const flushed = sandbox.execInHost('iptables', ['-F', 'MOAT-FORWARD']);
      expect(flushed.status).toBe(0);
      expect(reached(sandbox.httpStatusFromWan(v4))).toBe(true);
      const plan = run(['plan', '-f', policy.file, '--detailed-exitcode']);
      expect(plan.status).toBe(2);
      expect(plan.stdout).toContain('Changed outside moat (drift)');
      expect(run(['apply', '-f', policy.file, '--auto-approve']).status).toBe(0);
      expect(sandbox.httpStatusFromWan(v4)).toBe('000');
    });

    test('removing the container from the policy removes every moat object and opens the port', () => {
      const result = run(['apply', '-f', policy.write(EMPTY), '--auto-approve']);
      expect(result.status).toBe(0);
      expect(save()).not.toContain('MOAT');
      expect(sandbox.execInHost('ip6tables-save', ['-t', 'filter']).stdout).not.toContain('MOAT');
      expect(save()).toContain('-A DOCKER-USER -s 192.0.2.99/32 -j DROP');
      expect(reached(sandbox.httpStatusFromWan(v4))).toBe(true);
      expect(reached(sandbox.httpStatusFromWan(v6))).toBe(true);
      expect(run(['plan', '-f', policy.file, '--detailed-exitcode']).status).toBe(0);
    });
  },
);

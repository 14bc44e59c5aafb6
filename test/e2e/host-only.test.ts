/**
 * The walking skeleton end to end on every Docker target, with real packets: "only the host can
 * reach this port" over IPv4 and IPv6, a user's rule beside moat's jump, a snapshot that plans
 * like the host, an address move, drift and removal. On releases with ip6tables on by default
 * (27+), a second container on an `--ipv6` network is DNATed over IPv6 too, and held as well.
 * The snapshot taken here, with a changed policy and the live host's plan of it, is this
 * target's fixture in test/fixtures/snapshots (rewritten with MOAT_UPDATE_SNAPSHOTS=1).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from '@jest/globals';
import { ALL_TARGETS, describeOnDocker } from '../support/docker-targets.js';
import { HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { useLab } from '../support/lab.js';
import { EMPTY, HOST_ONLY } from '../support/policies.js';
import { updatingSnapshots, writeSnapshotFixture } from '../support/snapshot-fixtures.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'busybox', 'curl'] as const;
const USER_RULE = ['-s', '192.0.2.99/32', '-j', 'DROP'];
const V4 = `http://${HOST_V4}:2368/`;
const V6 = `http://[${HOST_V6}]:2368/`;
const OTHER = `http://${HOST_V4}:8081/`;
const V6_DNAT = `http://[${HOST_V6}]:2369/`;

/** The ghost6 container of the --ipv6 network, host-only too. */
const GHOST6 = `  ghost6:
    ingress:
      - ports: [2369/tcp]
        from: [host]
`;

/** A policy that changes what HOST_ONLY applied: a set, sources, another group's egress. */
const changed = (v6Dnat: boolean) => `version: 1
ipsets:
  office:
    family: ipv4
    type: hash:net
    entries: [198.51.100.0/28]
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host, ipset:office, 2001:db8:100::2]
  other:
    ingress:
      - ports: [8081/tcp]
        from: [host]
    egress:
      deny:
        - to: [192.0.2.0/24]
${v6Dnat ? GHOST6 : ''}`;

describeOnDocker(ALL_TARGETS, NEEDS, 'host-only port, end to end', (target) => {
  // Docker 27+ DNATs IPv6 for a network created with --ipv6: a path that is not docker-proxy.
  const v6Dnat = target.ip6tablesByDefault;
  const policy = v6Dnat ? HOST_ONLY + GHOST6 : HOST_ONLY;
  // Where moat hooks routed traffic, and where a user's own rules live: DOCKER-USER, or FORWARD
  // under the nftables backend, which has none.
  const hook = target.dockerUser ? 'DOCKER-USER' : 'FORWARD';
  const lab = useLab({ target }, (lab) => {
    lab.runHttpd('ghost', ['2368:2368'], [], 2368);
    lab.runHttpd('other', ['8081:80'], [], 80);
    if (v6Dnat) {
      lab.createNetwork('v6net', { subnet4: '172.31.0.0/24', subnet6: '2001:db8:31::/64' });
      lab.runHttpd('ghost6', ['2369:80'], ['--network', 'v6net'], 80);
    }
    const added = lab.execInHost('iptables', ['-I', hook, ...USER_RULE]);
    if (added.status !== 0) throw new Error(added.stderr);
  });
  const filter = () => lab.save('ipv4', 'filter');

  test('before moat, the outside reaches the published port over IPv4 and IPv6', () => {
    lab.expectReachability([
      ['wan -> v4', true, () => lab.wanReaches(V4)],
      ['wan -> v6', true, () => lab.wanReaches(V6)],
      ...(v6Dnat ? ([['wan -> v6 DNAT', true, () => lab.wanReaches(V6_DNAT)]] as const) : []),
    ]);
    if (v6Dnat && target.firewallBackend === 'nftables')
      expect(lab.execInHost('nft', ['list', 'table', 'ip6', 'docker-bridges']).stdout).toMatch(
        /tcp dport 2369 .*dnat/,
      );
    else if (v6Dnat) expect(lab.save('ipv6', 'nat')).toMatch(/--dport 2369 .*-j DNAT/);
  });

  test('plan shows the change and exits 2 with --detailed-exitcode', () => {
    const result = lab.moat(['plan', '-f', lab.policy.write(policy), '--detailed-exitcode']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(2);
    expect(result.stdout).toContain('ghost 2368/tcp: reachable from host only (was: anyone)');
  });

  test('apply makes the port host-only: the outside is refused, the host and other ports are not', () => {
    const result = lab.moat(['apply', '-f', lab.policy.file, '--auto-approve']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/Apply complete: \d+ added, 0 changed, 0 destroyed\./);
    lab.expectReachability([
      ['wan -> v4', false, () => lab.wanReaches(V4)],
      ['wan -> v6', false, () => lab.wanReaches(V6)],
      ['host -> 127.0.0.1', true, () => lab.hostReaches('http://127.0.0.1:2368/')],
      ['host -> v4', true, () => lab.hostReaches(V4)],
      ['wan -> other port', true, () => lab.wanReaches(OTHER)],
      ...(v6Dnat
        ? ([
            ['wan -> v6 DNAT', false, () => lab.wanReaches(V6_DNAT)],
            ['host -> v6 DNAT', true, () => lab.hostReaches(V6_DNAT)],
          ] as const)
        : []),
    ]);
  });

  test(`a second plan is empty, and the user rule in ${hook} survived below moat's jump`, () => {
    const result = lab.moat(['plan', '-f', lab.policy.file, '--detailed-exitcode']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('No changes. The host matches firewall.yaml.');
    expect(filter()).toContain(`-A ${hook} -s 192.0.2.99/32 -j DROP`);
    const rules = filter()
      .split('\n')
      .filter((l) => l.startsWith(`-A ${hook} `));
    expect(rules[0]).toMatch(/moat:[0-9a-f]+.* -j MOAT-FORWARD$/);
  });

  test('a snapshot of the host plans exactly like the host itself', () => {
    const dir = `${lab.policy.dir}/snapshot`;
    const taken = lab.moat(['snapshot', '--out', dir]);
    expect(taken.stderr).toBe('');
    expect(taken.status).toBe(0);
    lab.docker([
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
    const fromHost = lab.moat(['plan', '-f', lab.policy.file, '--json']);
    const fromSnapshot = lab.moat(['plan', '-f', lab.policy.file, '--json', '--snapshot', dir]);
    // The container started after the snapshot is the one difference: a new warning.
    expect(fromHost.stdout).toContain('late publishes 8082/tcp');
    expect(fromSnapshot.stdout).not.toContain('late');
    lab.docker(['rm', '-f', 'late']);
    expect(lab.moat(['plan', '-f', lab.policy.file, '--json']).stdout).toBe(fromSnapshot.stdout);
  });

  test('a changed policy plans the same from the snapshot as on the host, text and JSON', () => {
    const snapshot = `${lab.policy.dir}/snapshot`;
    const policyText = changed(v6Dnat);
    const file = join(lab.policy.dir, 'changed.yaml');
    const plan = (extra: string[]) => {
      const result = lab.moat(['plan', '-f', file, ...extra]);
      expect({ stderr: result.stderr, status: result.status }).toEqual({ stderr: '', status: 0 });
      return result.stdout;
    };
    writeFileSync(file, policyText);
    const live = { text: plan([]), json: plan(['--json']) };
    expect(live.text).toContain(`Docker ${target.release}`);
    expect(live.text).toContain(`firewall backend ${target.firewallBackend}`);
    expect(live.text).toMatch(/Plan: [1-9]\d* to add, [1-9]\d* to change, \d+ to destroy\./);
    expect(plan(['--snapshot', snapshot])).toBe(live.text);
    expect(plan(['--json', '--snapshot', snapshot])).toBe(live.json);
    if (updatingSnapshots()) writeSnapshotFixture(target, snapshot, policyText, live);
  });

  test('protection holds when the container gets a new address on another network', () => {
    lab.docker(['network', 'create', '--subnet', '172.30.0.0/24', 'appnet']);
    lab.docker(['network', 'connect', 'appnet', 'ghost']);
    lab.expectReachability([
      ['wan -> v4', false, () => lab.wanReaches(V4)],
      ['host -> 127.0.0.1', true, () => lab.hostReaches('http://127.0.0.1:2368/')],
    ]);
  });

  test('drift: a flushed moat chain is reported and repaired', () => {
    const flushed = lab.execInHost('iptables', ['-F', 'MOAT-FORWARD']);
    expect(flushed.status).toBe(0);
    lab.expectReachability([['wan -> v4 (drifted)', true, () => lab.wanReaches(V4)]]);
    const plan = lab.moat(['plan', '-f', lab.policy.file, '--detailed-exitcode']);
    expect(plan.status).toBe(2);
    expect(plan.stdout).toContain('Changed outside moat (drift)');
    expect(lab.moat(['apply', '-f', lab.policy.file, '--auto-approve']).status).toBe(0);
    lab.expectReachability([['wan -> v4 (repaired)', false, () => lab.wanReaches(V4)]]);
  });

  test('removing the container from the policy removes every moat object and opens the port', () => {
    const result = lab.moat(['apply', '-f', lab.policy.write(EMPTY), '--auto-approve']);
    expect(result.status).toBe(0);
    expect(filter()).not.toContain('MOAT');
    expect(lab.save('ipv6', 'filter')).not.toContain('MOAT');
    expect(filter()).toContain(`-A ${hook} -s 192.0.2.99/32 -j DROP`);
    lab.expectReachability([
      ['wan -> v4', true, () => lab.wanReaches(V4)],
      ['wan -> v6', true, () => lab.wanReaches(V6)],
      ...(v6Dnat ? ([['wan -> v6 DNAT', true, () => lab.wanReaches(V6_DNAT)]] as const) : []),
    ]);
    expect(lab.moat(['plan', '-f', lab.policy.file, '--detailed-exitcode']).status).toBe(0);
  });
});

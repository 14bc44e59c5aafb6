/**
 * Docker 29's nftables firewall backend, with real packets: moat says which backend it found and
 * where it hooks (FORWARD: there is no DOCKER-USER), and warns, live and from a snapshot, about
 * what silently drops the traffic Docker's nftables rules accepted: a FORWARD policy of DROP in
 * iptables, or an nft forward chain with policy drop. A host without nft still snapshots and
 * plans; `moat explain` says it cannot judge such a host, and why. (The policy capabilities
 * themselves run on this backend in host-only, seed-scenarios and source-allowlist.)
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from '@jest/globals';
import { HOST_V4, WAN_V4 } from '../support/docker-sandbox.js';
import { describeOnDocker } from '../support/docker-targets.js';
import { useLab } from '../support/lab.js';
import { HOST_ONLY } from '../support/policies.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl', 'nft'] as const;
const GHOST = `http://${HOST_V4}:2368/`;
const OTHER = `http://${HOST_V4}:8081/`;
const FIRST_LINE = 'Docker 29.7.2, firewall backend nftables; moat hooks FORWARD (no DOCKER-USER).';
const IPTABLES_DROP = 'the iptables FORWARD chain (IPv4) has policy DROP';

describeOnDocker(['29.7.2-nftables'], NEEDS, "Docker's nftables backend", (target) => {
  const lab = useLab({ target }, (lab) => {
    lab.runHttpd('ghost', ['2368:2368'], [], 2368);
    lab.runHttpd('other', ['8081:80'], [], 80);
  });
  const work = mkdtempSync(join(tmpdir(), 'moat-nft-'));
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });
  let snapshots = 0;
  /** `moat plan` live and from a fresh snapshot: both must print the same; returns it. */
  const planBothWays = (env: Record<string, string> = {}): string => {
    const dir = join(work, `snapshot-${++snapshots}`);
    const taken = lab.moat(['snapshot', '--out', dir], env);
    expect({ stderr: taken.stderr, status: taken.status }).toEqual({ stderr: '', status: 0 });
    expect(taken.stdout).toContain('(Docker 29.7.2, firewall backend nftables)');
    const live = lab.moat(['plan', '-f', lab.policy.file], env);
    const offline = lab.moat(['plan', '-f', lab.policy.file, '--snapshot', dir], env);
    expect(offline.stdout).toBe(live.stdout);
    expect(live.status).toBe(0);
    return live.stdout;
  };
  const snapshotFiles = () => readdirSync(join(work, `snapshot-${snapshots}`)).sort();

  test('the daemon runs the nftables backend: its tables in nft, no DOCKER-USER in iptables', () => {
    expect(lab.execInHost('nft', ['list', 'tables']).stdout).toContain('table ip docker-bridges');
    expect(lab.save('ipv4', 'filter')).not.toContain('DOCKER-USER');
  });

  test('moat explain: every answer is unknown, saying why; the packet does get through', () => {
    // Docker's rules live in nft tables iptables-save does not show, and explain reads iptables'.
    const snapshot = join(work, 'explain-snapshot');
    expect(lab.moat(['snapshot', '--out', snapshot]).status).toBe(0);
    const question = ['-f', lab.policy.file, '--from', WAN_V4, '--to', 'ghost:2368/tcp'];
    const r = lab.moat(['explain', '--snapshot', snapshot, ...question]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('IPv4: unknown');
    expect(r.stdout).toContain(
      'Docker runs its nftables firewall backend: its rules live in the nft tables `ip docker-bridges` and `ip6 docker-bridges`',
    );
    expect(lab.wanReaches(GHOST)).toBe(true);
  });

  test('plan and status name the backend and the hook; moat jumps from FORWARD and INPUT', () => {
    lab.applyConverged(HOST_ONLY);
    const plan = lab.moat(['plan', '-f', lab.policy.file, '--json']);
    expect(JSON.parse(plan.stdout)).toMatchObject({
      docker: {
        version: '29.7.2',
        firewall_backend: 'nftables',
        forward_hooks: { ipv4: 'FORWARD', ipv6: 'FORWARD' },
      },
    });
    expect(planBothWays().split('\n')[0]).toBe(FIRST_LINE);
    expect(snapshotFiles()).toContain('nftables-ruleset.json');
    const status = lab.moat(['status', '-f', lab.policy.file]);
    expect(status.stdout).toMatch(/^Docker: +29\.7\.2, firewall backend nftables$/m);
    expect(status.status).toBe(0);
    const filter = lab.save('ipv4', 'filter').split('\n');
    expect(filter.find((l) => l.startsWith('-A FORWARD '))).toMatch(/-j MOAT-FORWARD$/);
    expect(filter.find((l) => l.startsWith('-A INPUT '))).toMatch(/-j MOAT-INPUT$/);
    lab.expectReachability([
      ['wan -> ghost (host only)', false, () => lab.wanReaches(GHOST)],
      ['wan -> other (not named)', true, () => lab.wanReaches(OTHER)],
    ]);
  });

  test('an iptables FORWARD policy of DROP breaks what Docker accepted; plan and status say so', () => {
    expect(lab.execInHost('iptables', ['-P', 'FORWARD', 'DROP']).status).toBe(0);
    try {
      // The danger is real: Docker's accept of the published port does not get it through.
      lab.expectReachability([['wan -> other, FORWARD DROP', false, () => lab.wanReaches(OTHER)]]);
      const text = planBothWays();
      expect(text).toContain(IPTABLES_DROP);
      expect(text).toContain('No changes.');
      const status = lab.moat(['status', '-f', lab.policy.file, '--json']);
      expect(JSON.parse(status.stdout)).toMatchObject({
        status: 'Ready',
        warnings: [{ code: 'forward-policy-drop' }],
      });
    } finally {
      expect(lab.execInHost('iptables', ['-P', 'FORWARD', 'ACCEPT']).status).toBe(0);
    }
    lab.expectReachability([['wan -> other, FORWARD ACCEPT', true, () => lab.wanReaches(OTHER)]]);
    expect(planBothWays()).not.toContain(IPTABLES_DROP);
  });

  test("a user's nft forward chain with policy drop is named, live and from the snapshot", () => {
    const nft = (...args: string[]) => {
      expect(lab.execInHost('nft', args).status).toBe(0);
    };
    nft('add', 'table', 'inet', 'userfw');
    nft(
      'add',
      'chain',
      'inet',
      'userfw',
      'forward',
      '{ type filter hook forward priority 0 ; policy drop ; }',
    );
    try {
      lab.expectReachability([['wan -> other, nft drop', false, () => lab.wanReaches(OTHER)]]);
      expect(planBothWays()).toContain(
        'the nftables chain inet userfw forward (hook forward, policy drop)',
      );
    } finally {
      nft('delete', 'table', 'inet', 'userfw');
    }
    lab.expectReachability([['wan -> other, no nft drop', true, () => lab.wanReaches(OTHER)]]);
  });

  test('without nft, snapshot and plan still work; only the nft check is left out', () => {
    // Every tool of /usr/sbin but nft.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    for (const tool of readdirSync('/usr/sbin'))
      if (tool !== 'nft') symlinkSync(join('/usr/sbin', tool), join(bin, tool));
    const env = { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` };
    expect(lab.moat(['plan', '-f', lab.policy.file], env).stderr).toBe('');
    expect(lab.execInHost('iptables', ['-P', 'FORWARD', 'DROP']).status).toBe(0);
    try {
      const text = planBothWays(env);
      expect(text.split('\n')[0]).toBe(FIRST_LINE);
      expect(text).toContain(IPTABLES_DROP);
      expect(snapshotFiles()).not.toContain('nftables-ruleset.json');
      expect(snapshotFiles()).toContain('docker-info.json');
    } finally {
      expect(lab.execInHost('iptables', ['-P', 'FORWARD', 'ACCEPT']).status).toBe(0);
    }
  });
});

/**
 * The seed scenarios end to end, with real packets: a real dockerd in its own namespace,
 * destinations in namespaces of their own, clients inside containers, and the built CLI. Each
 * runs on the releases whose layouts differ for it (DOCKER-FORWARD in 28, no DOCKER-USER under
 * the nftables backend of 29).
 *
 *   internal  192.0.2.0/24     host side 192.0.2.1,   server 192.0.2.10
 *   outside   203.0.113.0/24   host side 203.0.113.1, servers 203.0.113.10 and 203.0.113.20
 *   wan       198.51.100.0/24  host side 198.51.100.1 (and 2001:db8:100::1), client .2 (::2)
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { expect, test } from '@jest/globals';
import type { DockerSandbox } from '../support/docker-sandbox.js';
import { describeOnDocker } from '../support/docker-targets.js';
import { useLab } from '../support/lab.js';
import { EMPTY, HOST_ONLY } from '../support/policies.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'] as const;

/** Pids of docker-proxy processes in the sandbox's host namespace. */
function proxiesIn(sandbox: DockerSandbox): number[] {
  const hostNs = statSync(sandbox.host.path).ino;
  return readdirSync('/proc')
    .map(Number)
    .filter((pid) => {
      if (!Number.isInteger(pid)) return false;
      try {
        return (
          readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'docker-proxy' &&
          readlinkSync(`/proc/${pid}/ns/net`) === `net:[${hostNs}]`
        );
      } catch {
        return false; // exited meanwhile
      }
    });
}

const INTERNAL_TARGETS = ['20.10.24', '28.5.2', '29.7.2-nftables'] as const;
describeOnDocker(
  INTERNAL_TARGETS,
  NEEDS,
  'seed scenario: a container kept off an internal network',
  (target) => {
    const DENY_INTERNAL = `version: 1
containers:
  webapp:
    egress:
      deny:
        - to: [192.0.2.0/24]
`;
    const lab = useLab({ target, destinations: true }, (lab) => {
      lab.runSleeper('webapp');
      // A published port on the host: reached from a container through docker-proxy (INPUT).
      lab.runHttpd('bystander', ['8080:80']);
    });
    const from =
      (container: string, address: string, port = 80) =>
      () =>
        lab.containerReaches(container, address, port);

    test('before moat, every container reaches everything', () => {
      lab.expectReachability([
        ['webapp -> 192.0.2.10', true, from('webapp', '192.0.2.10')],
        ['webapp -> 203.0.113.10', true, from('webapp', '203.0.113.10')],
        ['webapp -> 203.0.113.20', true, from('webapp', '203.0.113.20')],
        ['webapp -> host 192.0.2.1:8080', true, from('webapp', '192.0.2.1', 8080)],
        ['bystander -> 192.0.2.10', true, from('bystander', '192.0.2.10')],
      ]);
    });

    test('plan shows a change and exits 2', () => {
      const plan = lab.moat(['plan', '-f', lab.policy.write(DENY_INTERNAL), '--detailed-exitcode']);
      expect(plan.stderr).toBe('');
      expect(plan.status).toBe(2);
      // Issue 5: the text plan says per container what will change, in words.
      expect(plan.stdout).toContain('webapp');
    });

    test('after apply, webapp reaches the outside but not the internal network; others still do', () => {
      lab.applyConverged(DENY_INTERNAL);
      lab.expectReachability([
        ['webapp -> 192.0.2.10', false, from('webapp', '192.0.2.10')],
        ['webapp -> 203.0.113.10', true, from('webapp', '203.0.113.10')],
        ['webapp -> 203.0.113.20', true, from('webapp', '203.0.113.20')],
        // Egress covers traffic to the host itself too: its internal address is in the block.
        ['webapp -> host 192.0.2.1:8080', false, from('webapp', '192.0.2.1', 8080)],
        ['webapp -> host 203.0.113.1:8080', true, from('webapp', '203.0.113.1', 8080)],
        ['bystander -> 192.0.2.10', true, from('bystander', '192.0.2.10')],
      ]);
    });

    test('removing the policy restores reachability and leaves no moat object', () => {
      lab.applyConverged(EMPTY);
      expect(lab.save('ipv4', 'filter')).not.toContain('MOAT');
      lab.expectReachability([
        ['webapp -> 192.0.2.10', true, from('webapp', '192.0.2.10')],
        ['webapp -> host 192.0.2.1:8080', true, from('webapp', '192.0.2.1', 8080)],
      ]);
    });
  },
);

const EGRESS_TARGETS = ['20.10.24', '29.7.2', '29.7.2-nftables'] as const;
describeOnDocker(
  EGRESS_TARGETS,
  NEEDS,
  'seed scenario: egress only to an allowlist ipset',
  (target) => {
    const lab = useLab({ target, destinations: true }, (lab) => {
      lab.runHttpd('mailer', ['8080:80']);
    });
    const allowOnly = (entry: string) => `version: 1
ipsets:
  allowed:
    family: ipv4
    type: hash:net
    entries: [${entry}]
containers:
  mailer:
    egress:
      default: deny
      allow:
        - to: [ipset:allowed]
`;
    const from =
      (container: string, address: string, port = 80) =>
      () =>
        lab.containerReaches(container, address, port);
    const wan = (url: string) => () => lab.wanReaches(url);
    const ipsetSave = () => lab.ipsetSave();
    const moatRules = () =>
      lab
        .save('ipv4', 'filter')
        .split('\n')
        .filter((line) => line.startsWith('-A MOAT-') && !line.includes('moat-digest:'));

    test('before moat, the container reaches every destination', () => {
      lab.expectReachability([
        ['mailer -> 203.0.113.10', true, from('mailer', '203.0.113.10')],
        ['mailer -> 203.0.113.20', true, from('mailer', '203.0.113.20')],
        ['mailer -> 192.0.2.10', true, from('mailer', '192.0.2.10')],
      ]);
    });

    let rulesWithFirstSet: string[] = [];

    test('with default deny and an allowlist set, only the listed address is reached', () => {
      lab.applyConverged(allowOnly('203.0.113.10'));
      expect(ipsetSave()).toContain('add moat-allowed 203.0.113.10');
      rulesWithFirstSet = moatRules();
      expect(rulesWithFirstSet.join('\n')).toContain('--match-set moat-allowed dst');
      lab.expectReachability([
        ['mailer -> 203.0.113.10', true, from('mailer', '203.0.113.10')],
        ['mailer -> 203.0.113.20', false, from('mailer', '203.0.113.20')],
        ['mailer -> 192.0.2.10', false, from('mailer', '192.0.2.10')],
        ['mailer -> host 203.0.113.1:8080', false, from('mailer', '203.0.113.1', 8080)],
      ]);
    });

    test('inbound connections to its published port still work: replies are not egress', () => {
      // The IPv6 client goes through docker-proxy, which runs in the host namespace.
      expect(proxiesIn(lab.sandbox).length).toBeGreaterThan(0);
      lab.expectReachability([
        ['wan -> 198.51.100.1:8080 (routed, DNAT)', true, wan('http://198.51.100.1:8080/')],
        [
          'wan -> [2001:db8:100::1]:8080 (docker-proxy)',
          true,
          wan('http://[2001:db8:100::1]:8080/'),
        ],
      ]);
    });

    test('changing the set entries flips reachability; the set is swapped in place', () => {
      lab.applyConverged(allowOnly('203.0.113.20'));
      const sets = ipsetSave();
      expect(sets).toContain('add moat-allowed 203.0.113.20');
      expect(sets).not.toContain('203.0.113.10');
      expect(sets).not.toContain('.swp');
      expect(sets.match(/^create moat-/gm)).toEqual(['create moat-']);
      // The rules referencing the set did not change: only the set's members did.
      expect(moatRules()).toEqual(rulesWithFirstSet);
      lab.expectReachability([
        ['mailer -> 203.0.113.10', false, from('mailer', '203.0.113.10')],
        ['mailer -> 203.0.113.20', true, from('mailer', '203.0.113.20')],
        ['mailer -> 192.0.2.10', false, from('mailer', '192.0.2.10')],
        ['wan -> 198.51.100.1:8080 (routed, DNAT)', true, wan('http://198.51.100.1:8080/')],
        [
          'wan -> [2001:db8:100::1]:8080 (docker-proxy)',
          true,
          wan('http://[2001:db8:100::1]:8080/'),
        ],
      ]);
    });

    test('removing the policy destroys the set and restores reachability', () => {
      lab.applyConverged(EMPTY);
      expect(ipsetSave()).not.toContain('moat-');
      lab.expectReachability([
        ['mailer -> 203.0.113.10', true, from('mailer', '203.0.113.10')],
        ['mailer -> 192.0.2.10', true, from('mailer', '192.0.2.10')],
      ]);
    });
  },
);

// Without docker-proxy, 28 sets route_localnet and hairpins in its raw and nat tables.
const NO_PROXY_TARGETS = ['20.10.24', '28.5.2'] as const;
describeOnDocker(
  NO_PROXY_TARGETS,
  NEEDS,
  'seed scenario: host-only port without the userland proxy',
  (target) => {
    const lab = useLab({ target, daemonArgs: ['--userland-proxy=false'] }, (lab) => {
      lab.runHttpd('ghost', ['2368:2368']);
      lab.runHttpd('other', ['8081:80']);
    });
    const wan = (url: string) => () => lab.wanReaches(url);
    const host = (url: string) => () => lab.hostReaches(url);

    test('the daemon really runs without docker-proxy, and the port is open to wan', () => {
      // dockerd still binds the port to reserve it, but starts no docker-proxy.
      expect(proxiesIn(lab.sandbox)).toEqual([]);
      lab.expectReachability([
        ['wan -> 198.51.100.1:2368', true, wan('http://198.51.100.1:2368/')],
      ]);
    });

    test('after apply, wan is refused over IPv4 and IPv6; the host still reaches it', () => {
      lab.applyConverged(HOST_ONLY);
      lab.expectReachability([
        ['wan -> 198.51.100.1:2368', false, wan('http://198.51.100.1:2368/')],
        ['wan -> [2001:db8:100::1]:2368', false, wan('http://[2001:db8:100::1]:2368/')],
        ['host -> 198.51.100.1:2368', true, host('http://198.51.100.1:2368/')],
        ['wan -> 198.51.100.1:8081 (not named)', true, wan('http://198.51.100.1:8081/')],
      ]);
    });

    test('removing the policy opens the port again', () => {
      lab.applyConverged(EMPTY);
      lab.expectReachability([
        ['wan -> 198.51.100.1:2368', true, wan('http://198.51.100.1:2368/')],
      ]);
    });
  },
);

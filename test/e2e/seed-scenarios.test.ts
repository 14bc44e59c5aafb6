/**
 * The seed scenarios end to end, with real packets: a real dockerd in its own namespace,
 * destinations in namespaces of their own, clients inside containers, and the built CLI.
 *
 *   internal  192.0.2.0/24     host side 192.0.2.1,   server 192.0.2.10
 *   outside   203.0.113.0/24   host side 203.0.113.1, servers 203.0.113.10 and 203.0.113.20
 *   wan       198.51.100.0/24  host side 198.51.100.1 (and 2001:db8:100::1), client .2 (::2)
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { applyConverged, expectReachability } from '../support/e2e-moat.js';
import { Destination } from '../support/lan.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';
import { EMPTY, HOST_ONLY } from '../support/policies.js';
import { httpFromContainer } from '../support/reach.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'] as const;
const reached = (status: string): boolean => status !== '000';

/** Starts a sandbox with the internal and outside destinations; all torn down by `stop`. */
class Lab {
  sandbox: DockerSandbox | undefined;
  private readonly destinations: Destination[] = [];
  readonly policy = new PolicyDir();

  async start(daemonArgs: readonly string[] = [], withDestinations = true): Promise<DockerSandbox> {
    this.sandbox = await DockerSandbox.start({ daemonArgs });
    if (withDestinations) {
      this.destinations.push(new Destination(this.sandbox.host, '192.0.2.1/24', ['192.0.2.10/24']));
      this.destinations.push(
        new Destination(this.sandbox.host, '203.0.113.1/24', [
          '203.0.113.10/24',
          '203.0.113.20/24',
        ]),
      );
    }
    return this.sandbox;
  }

  async stop(): Promise<void> {
    const problems: unknown[] = [];
    for (const destination of this.destinations) {
      try {
        destination.destroy();
      } catch (error) {
        problems.push(error);
      }
    }
    try {
      await this.sandbox?.stop();
    } catch (error) {
      problems.push(error);
    }
    this.policy.remove();
    if (problems.length > 0) throw problems[0];
  }
}

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

const sleeper = (sandbox: DockerSandbox, name: string): void => {
  sandbox.docker(['run', '-d', '--name', name, 'moat-test/busybox', 'sleep', '3600']);
};

describeWith(NEEDS, 'seed scenario: a container kept off an internal network', () => {
  const lab = new Lab();
  let sandbox: DockerSandbox;
  const DENY_INTERNAL = `version: 1
containers:
  webapp:
    egress:
      deny:
        - to: [192.0.2.0/24]
`;
  const from =
    (container: string, address: string, port = 80) =>
    () =>
      httpFromContainer(sandbox, container, address, port);

  beforeAll(async () => {
    sandbox = await lab.start();
    sleeper(sandbox, 'webapp');
    // A published port on the host: reached from a container through docker-proxy (INPUT).
    sandbox.runHttpd('bystander', ['8080:80']);
  }, 180_000);

  afterAll(() => lab.stop(), 120_000);

  test('before moat, every container reaches everything', () => {
    expectReachability(sandbox, [
      ['webapp -> 192.0.2.10', true, from('webapp', '192.0.2.10')],
      ['webapp -> 203.0.113.10', true, from('webapp', '203.0.113.10')],
      ['webapp -> 203.0.113.20', true, from('webapp', '203.0.113.20')],
      ['webapp -> host 192.0.2.1:8080', true, from('webapp', '192.0.2.1', 8080)],
      ['bystander -> 192.0.2.10', true, from('bystander', '192.0.2.10')],
    ]);
  });

  test('plan shows a change and exits 2', () => {
    const plan = moat(
      sandbox,
      ['plan', '-f', lab.policy.write(DENY_INTERNAL), '--detailed-exitcode'],
      sandbox.env,
    );
    expect(plan.stderr).toBe('');
    expect(plan.status).toBe(2);
    // Issue 5: the text plan says per container what will change, in words.
    expect(plan.stdout).toContain('webapp');
  });

  test('after apply, webapp reaches the outside but not the internal network; others still do', () => {
    applyConverged(sandbox, lab.policy, DENY_INTERNAL);
    expectReachability(sandbox, [
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
    applyConverged(sandbox, lab.policy, EMPTY);
    expect(sandbox.execInHost('iptables-save', ['-t', 'filter']).stdout).not.toContain('MOAT');
    expectReachability(sandbox, [
      ['webapp -> 192.0.2.10', true, from('webapp', '192.0.2.10')],
      ['webapp -> host 192.0.2.1:8080', true, from('webapp', '192.0.2.1', 8080)],
    ]);
  });
});

describeWith(NEEDS, 'seed scenario: egress only to an allowlist ipset', () => {
  const lab = new Lab();
  let sandbox: DockerSandbox;
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
      httpFromContainer(sandbox, container, address, port);
  const wan = (url: string) => () => reached(sandbox.httpStatusFromWan(url));
  const ipsetSave = () => sandbox.execInHost('ipset', ['save']).stdout;
  const moatRules = () =>
    sandbox
      .execInHost('iptables-save', ['-t', 'filter'])
      .stdout.split('\n')
      .filter((line) => line.startsWith('-A MOAT-') && !line.includes('moat-digest:'));

  beforeAll(async () => {
    sandbox = await lab.start();
    sandbox.runHttpd('mailer', ['8080:80']);
  }, 180_000);

  afterAll(() => lab.stop(), 120_000);

  test('before moat, the container reaches every destination', () => {
    expectReachability(sandbox, [
      ['mailer -> 203.0.113.10', true, from('mailer', '203.0.113.10')],
      ['mailer -> 203.0.113.20', true, from('mailer', '203.0.113.20')],
      ['mailer -> 192.0.2.10', true, from('mailer', '192.0.2.10')],
    ]);
  });

  let rulesWithFirstSet: string[] = [];

  test('with default deny and an allowlist set, only the listed address is reached', () => {
    applyConverged(sandbox, lab.policy, allowOnly('203.0.113.10'));
    expect(ipsetSave()).toContain('add moat-allowed 203.0.113.10');
    rulesWithFirstSet = moatRules();
    expect(rulesWithFirstSet.join('\n')).toContain('--match-set moat-allowed dst');
    expectReachability(sandbox, [
      ['mailer -> 203.0.113.10', true, from('mailer', '203.0.113.10')],
      ['mailer -> 203.0.113.20', false, from('mailer', '203.0.113.20')],
      ['mailer -> 192.0.2.10', false, from('mailer', '192.0.2.10')],
      ['mailer -> host 203.0.113.1:8080', false, from('mailer', '203.0.113.1', 8080)],
    ]);
  });

  test('inbound connections to its published port still work: replies are not egress', () => {
    // The IPv6 client goes through docker-proxy, which runs in the host namespace.
    expect(proxiesIn(sandbox).length).toBeGreaterThan(0);
    expectReachability(sandbox, [
      ['wan -> 198.51.100.1:8080 (routed, DNAT)', true, wan('http://198.51.100.1:8080/')],
      ['wan -> [2001:db8:100::1]:8080 (docker-proxy)', true, wan('http://[2001:db8:100::1]:8080/')],
    ]);
  });

  test('changing the set entries flips reachability; the set is swapped in place', () => {
    applyConverged(sandbox, lab.policy, allowOnly('203.0.113.20'));
    const sets = ipsetSave();
    expect(sets).toContain('add moat-allowed 203.0.113.20');
    expect(sets).not.toContain('203.0.113.10');
    expect(sets).not.toContain('.swp');
    expect(sets.match(/^create moat-/gm)).toEqual(['create moat-']);
    // The rules referencing the set did not change: only the set's members did.
    expect(moatRules()).toEqual(rulesWithFirstSet);
    expectReachability(sandbox, [
      ['mailer -> 203.0.113.10', false, from('mailer', '203.0.113.10')],
      ['mailer -> 203.0.113.20', true, from('mailer', '203.0.113.20')],
      ['mailer -> 192.0.2.10', false, from('mailer', '192.0.2.10')],
      ['wan -> 198.51.100.1:8080 (routed, DNAT)', true, wan('http://198.51.100.1:8080/')],
      ['wan -> [2001:db8:100::1]:8080 (docker-proxy)', true, wan('http://[2001:db8:100::1]:8080/')],
    ]);
  });

  test('removing the policy destroys the set and restores reachability', () => {
    applyConverged(sandbox, lab.policy, EMPTY);
    expect(ipsetSave()).not.toContain('moat-');
    expectReachability(sandbox, [
      ['mailer -> 203.0.113.10', true, from('mailer', '203.0.113.10')],
      ['mailer -> 192.0.2.10', true, from('mailer', '192.0.2.10')],
    ]);
  });
});

describeWith(NEEDS, 'seed scenario: host-only port without the userland proxy', () => {
  const lab = new Lab();
  let sandbox: DockerSandbox;
  const wan = (url: string) => () => reached(sandbox.httpStatusFromWan(url));
  const host = (url: string) => () => reached(sandbox.httpStatusFromHost(url));

  beforeAll(async () => {
    sandbox = await lab.start(['--userland-proxy=false'], false);
    sandbox.runHttpd('ghost', ['2368:2368']);
    sandbox.runHttpd('other', ['8081:80']);
  }, 180_000);

  afterAll(() => lab.stop(), 120_000);

  test('the daemon really runs without docker-proxy, and the port is open to wan', () => {
    // dockerd still binds the port to reserve it, but starts no docker-proxy.
    expect(proxiesIn(sandbox)).toEqual([]);
    expectReachability(sandbox, [
      ['wan -> 198.51.100.1:2368', true, wan('http://198.51.100.1:2368/')],
    ]);
  });

  test('after apply, wan is refused over IPv4 and IPv6; the host still reaches it', () => {
    applyConverged(sandbox, lab.policy, HOST_ONLY);
    expectReachability(sandbox, [
      ['wan -> 198.51.100.1:2368', false, wan('http://198.51.100.1:2368/')],
      ['wan -> [2001:db8:100::1]:2368', false, wan('http://[2001:db8:100::1]:2368/')],
      ['host -> 198.51.100.1:2368', true, host('http://198.51.100.1:2368/')],
      ['wan -> 198.51.100.1:8081 (not named)', true, wan('http://198.51.100.1:8081/')],
    ]);
  });

  test('removing the policy opens the port again', () => {
    applyConverged(sandbox, lab.policy, EMPTY);
    expectReachability(sandbox, [
      ['wan -> 198.51.100.1:2368', true, wan('http://198.51.100.1:2368/')],
    ]);
  });
});

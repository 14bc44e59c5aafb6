/**
 * `egress: default: deny` also blocks name resolution, and the smallest policy that keeps it
 * working (docs/policy.md, "Name resolution under default: deny"), with real packets: a real
 * dockerd, a container on a user-defined network (so Docker's embedded resolver at 127.0.0.11
 * answers it, forwarding to `--dns`), and a real resolver (dnsmasq) in a destination namespace.
 *
 *   outside  203.0.113.0/24  host side 203.0.113.1, web server 203.0.113.10, resolver 203.0.113.53
 *
 * dockerd sends the embedded resolver's forwarded queries from the container's own network
 * namespace, so they leave with the container's address and cross the host's FORWARD chain like
 * any other egress (Docker's masquerade then gives them the host's address: the resolver sees
 * 203.0.113.1). Were they sent from the host's namespace, moat's egress rules, keyed on the
 * container's address, could not block them: the second test shows they do.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { applyConverged, expectReachability } from '../support/e2e-moat.js';
import { Destination } from '../support/lan.js';
import { PolicyDir } from '../support/moat-cli.js';
import { EMPTY } from '../support/policies.js';
import { describeWith } from '../support/prereq.js';
import { httpFromContainer } from '../support/reach.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl', 'dnsmasq'] as const;

const RESOLVER = '203.0.113.53';
const WEB = '203.0.113.10';
const NAME = 'web.moat.test';

/** The policy docs/policy.md shows, minus the resolver rule. */
const WITHOUT_DNS = `version: 1
containers:
  app:
    egress:
      default: deny
      allow:
        - to: [${WEB}]
          ports: [80/tcp]
`;

/** docs/policy.md's smallest policy that keeps name resolution working. */
const WITH_DNS = `${WITHOUT_DNS}        - to: [${RESOLVER}] # the resolver: --dns, or the host's /etc/resolv.conf
          ports: [53/udp, 53/tcp]
`;

describeWith(NEEDS, 'egress default deny and DNS through Docker’s embedded resolver', () => {
  let started: DockerSandbox | undefined;
  const sandbox = (): DockerSandbox => {
    if (started === undefined) throw new Error('the sandbox did not start');
    return started;
  };
  let destination: Destination | undefined;
  let resolver: ChildProcess | undefined;
  const policy = new PolicyDir();
  const logDir = mkdtempSync(join(tmpdir(), 'moat-dns-'));
  const queryLog = join(logDir, 'queries.log');

  /** What the container's resolver (127.0.0.11, the embedded one) answers for NAME. */
  const resolves = (): boolean => {
    const out = sandbox().docker([
      'exec',
      'app',
      'sh',
      '-c',
      `busybox nslookup -type=a ${NAME} 2>&1 || true`,
    ]);
    return new RegExp(`Address:\\s+${WEB.replace(/\./g, '\\.')}\\b`).test(out);
  };

  beforeAll(async () => {
    started = await DockerSandbox.start();
    destination = new Destination(sandbox().host, '203.0.113.1/24', [
      `${WEB}/24`,
      `${RESOLVER}/24`,
    ]);
    // `ip netns exec` execs dnsmasq in place: the child's pid is the resolver's.
    resolver = spawn(
      'ip',
      [
        'netns',
        'exec',
        destination.ns.name,
        'dnsmasq',
        '--keep-in-foreground',
        '--conf-file=/dev/null',
        '--pid-file',
        '--no-resolv',
        '--no-hosts',
        `--listen-address=${RESOLVER}`,
        '--bind-interfaces',
        '--local=/moat.test/',
        `--address=/${NAME}/${WEB}`,
        '--log-queries',
        `--log-facility=${queryLog}`,
      ],
      { stdio: 'ignore' },
    );
    resolver.on('error', () => undefined);
    const deadline = Date.now() + 10_000;
    for (let i = 0; i < 100 && Date.now() < deadline; i++) {
      const answer = spawnSync(
        'ip',
        ['netns', 'exec', destination.ns.name, 'busybox', 'nslookup', '-type=a', NAME, RESOLVER],
        { encoding: 'utf8', timeout: 5_000 },
      );
      if (answer.stdout.includes(WEB)) break;
      spawnSync('sleep', ['0.1']);
    }
    // A user-defined network: its containers ask Docker's embedded resolver, which forwards.
    sandbox().docker(['network', 'create', 'dnsnet']);
    sandbox().docker([
      'run',
      '-d',
      '--name',
      'app',
      '--network',
      'dnsnet',
      '--dns',
      RESOLVER,
      'moat-test/busybox',
      'sleep',
      '3600',
    ]);
  }, 180_000);

  afterAll(async () => {
    resolver?.kill('SIGKILL');
    destination?.destroy();
    await started?.stop();
    policy.remove();
    rmSync(logDir, { recursive: true, force: true });
  }, 120_000);

  test('docs/policy.md shows exactly this policy', () => {
    const docs = readFileSync(new URL('../../docs/policy.md', import.meta.url), 'utf8');
    const rules = WITH_DNS.split('\n').slice(WITH_DNS.split('\n').indexOf('  app:'));
    expect(docs).toContain(rules.join('\n'));
  });

  test('before moat, the container resolves the name through 127.0.0.11', () => {
    expect(sandbox().docker(['exec', 'app', 'cat', '/etc/resolv.conf'])).toContain(
      'nameserver 127.0.0.11',
    );
    expect(resolves()).toBe(true);
    // Forwarded to the real resolver, masqueraded on the way out.
    expect(readFileSync(queryLog, 'utf8')).toContain(`query[A] ${NAME} from 203.0.113.1\n`);
  });

  test('default deny with only the web server allowed: the server is reached by address, the name no longer resolves', () => {
    applyConverged(sandbox(), policy, WITHOUT_DNS);
    expectReachability(sandbox(), [
      [`app -> ${WEB}:80`, true, () => httpFromContainer(sandbox(), 'app', WEB)],
      [`app resolves ${NAME}`, false, resolves],
    ]);
  });

  test('allowing the resolver on 53/udp and 53/tcp brings name resolution back, and nothing more', () => {
    applyConverged(sandbox(), policy, WITH_DNS);
    expectReachability(sandbox(), [
      [`app resolves ${NAME}`, true, resolves],
      [`app -> ${WEB}:80`, true, () => httpFromContainer(sandbox(), 'app', WEB)],
      // The resolver's host serves HTTP too; only its port 53 is allowed.
      [`app -> ${RESOLVER}:80`, false, () => httpFromContainer(sandbox(), 'app', RESOLVER)],
    ]);
  });

  test('removing the policy leaves everything reachable again', () => {
    applyConverged(sandbox(), policy, EMPTY);
    expectReachability(sandbox(), [
      [`app resolves ${NAME}`, true, resolves],
      [`app -> ${RESOLVER}:80`, true, () => httpFromContainer(sandbox(), 'app', RESOLVER)],
    ]);
  });
});

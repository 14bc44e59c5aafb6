/**
 * `moat init` writes a policy that reproduces today's exposure: it validates, every exposed port
 * is named, and the first plan on the host it was read from is empty.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { compile } from '../../src/compile/compile.js';
import type { Publication } from '../../src/compile/model.js';
import { selectContainers } from '../../src/compile/select.js';
import type { DockerContainer, Inventory } from '../../src/docker/model.js';
import { inventoryFromApi } from '../../src/docker/normalize.js';
import { initialPolicy } from '../../src/init/generate.js';
import type { Policy } from '../../src/policy/model.js';
import { formatDiagnostic } from '../../src/policy/format.js';
import { parsePolicy } from '../../src/policy/parse.js';
import { diff } from '../../src/plan/diff.js';
import { container, dockerHost, inventory } from '../support/builders.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../fixtures/docker/${name}`, import.meta.url), 'utf8'));

const fixtureInventory = (): Inventory =>
  inventoryFromApi(fixture('containers.api-list.json'), fixture('networks.inspect.json'));

function parsed(text: string): Policy {
  const result = parsePolicy(text, 'firewall.yaml');
  expect(result.diagnostics.map((d) => formatDiagnostic(d, text))).toEqual([]);
  if (result.policy === undefined) throw new Error('no policy');
  return result.policy;
}

/** Every port Docker exposes beyond loopback, as the plan labels it. */
function exposedPorts(inv: Inventory): string[] {
  const out = new Set<string>();
  for (const c of inv.containers) {
    if (c.state !== 'running') continue;
    for (const p of c.ports) {
      if (p.hostIp.startsWith('127.') || p.hostIp === '::1' || p.protocol === 'sctp') continue;
      out.add(`${p.hostPort ?? p.containerPort}/${p.protocol}`);
    }
  }
  return [...out].sort();
}

/** The ports some policy rule names, as published by the containers. */
function namedPorts(publications: readonly Publication[]): string[] {
  return [
    ...new Set(
      publications.filter((p) => p.origins.length > 0).map((p) => `${p.port}/${p.protocol}`),
    ),
  ].sort();
}

/** The whole claim of `moat init`, checked against one inventory. */
/** `-d ADDRESS/32 … --dport PORT` of each publication on loopback only (what moat holds). */
function loopbackOnly(inv: Inventory): { addresses: string[]; dport: string }[] {
  const out: { addresses: string[]; dport: string }[] = [];
  for (const c of inv.containers.filter((x) => x.state === 'running')) {
    const byPort = new Map<string, string[]>();
    for (const p of c.ports)
      if (p.hostPort !== undefined)
        byPort.set(`${p.protocol}/${p.containerPort}`, [
          ...(byPort.get(`${p.protocol}/${p.containerPort}`) ?? []),
          p.hostIp,
        ]);
    for (const [key, ips] of byPort) {
      if (!ips.every((ip) => ip.startsWith('127.') || ip === '::1')) continue;
      const addresses = c.attachments
        .flatMap((a) => [a.ipv4, a.ipv6])
        .filter((a): a is string => a !== undefined)
        .map((a) => `-d ${a}/${a.includes(':') ? 128 : 32}`);
      out.push({ addresses, dport: `--dport ${key.split('/')[1] ?? ''}` });
    }
  }
  return out;
}

function expectFaithful(inv: Inventory): Policy {
  const policy = parsed(initialPolicy(inv));
  const desired = compile(policy, inv);
  // The one thing adopting changes: a port Docker publishes on loopback only is held to the
  // host at the container's address too (before Docker 28 a routing neighbour reached it).
  const held = loopbackOnly(inv);
  const drops = [desired.families.ipv4, desired.families.ipv6].flatMap((f) =>
    f.chains.flatMap((c) => c.rules.map((r) => r.spec)).filter((spec) => spec.endsWith('-j DROP')),
  );
  const isHeld = (spec: string): boolean =>
    held.some(
      (h) =>
        spec.includes(`${h.dport} `) &&
        // One rule per bridge and port when every container there agrees, else per address.
        (!spec.includes('-d ') || h.addresses.some((a) => spec.includes(`${a} `))),
    );
  expect(drops.filter((spec) => !isHeld(spec))).toEqual([]);
  if (held.length === 0)
    for (const family of [desired.families.ipv4, desired.families.ipv6]) {
      expect(family.chains).toEqual([]);
      expect(family.jumps).toEqual([]);
    }
  expect(desired.ipsets).toEqual([]);
  // No uncovered-port (every exposed port is named), no group without a container, no container
  // in two groups.
  expect(desired.warnings).toEqual([]);
  expect(namedPorts(desired.publications)).toEqual(exposedPorts(inv));

  const plan = diff(desired, dockerHost());
  expect(plan.exposures.every((e) => e.paths.every((p) => p.now.anyone))).toBe(true);
  if (held.length === 0) {
    expect(plan.steps).toEqual([]);
    expect(plan.summary).toEqual({ add: 0, change: 0, destroy: 0 });
  }

  // Each running container belongs to exactly one group.
  const selection = selectContainers(policy.containers, inv);
  const running = inv.containers.filter((c) => c.state === 'running').map((c) => c.name);
  const selected = [...selection.members.values()].flat().map((c) => c.name);
  expect(selected.sort()).toEqual(running.sort());
  return policy;
}

function withLabels(c: DockerContainer, labels: Record<string, string>): DockerContainer {
  return { ...c, labels };
}

describe('initialPolicy', () => {
  test('the Docker API fixture: one group per container, loopback-only ports only mentioned', () => {
    const inv = fixtureInventory();
    const text = initialPolicy(inv);
    const policy = expectFaithful(inv);
    expect(policy.containers.map((g) => [g.name, g.select])).toEqual([
      ['api', { kind: 'name', names: ['api'] }],
      ['ghost', { kind: 'name', names: ['ghost'] }],
      ['web6', { kind: 'name', names: ['web6'] }],
    ]);
    expect(policy.containers.find((g) => g.name === 'api')?.ingress).toEqual([
      { ports: [{ protocol: 'udp', first: 9000, last: 9000 }], from: [{ kind: 'any' }] },
    ]);
    // api's 127.0.0.1:8080 is not listed, but said.
    expect(text).toMatch(/^ {4}# 127\.0\.0\.1:8080 → 80\/tcp is published on loopback only/m);
    expect(text).toContain('- ports: [8443/tcp] # → container 443/tcp, on 0.0.0.0 and ::');
    expect(text).toContain('# Tighten it one rule at a time');
  });

  test('tightening one generated rule changes the plan (the ports named are the real ones)', () => {
    const inv = fixtureInventory();
    const tightened = initialPolicy(inv).replace(
      /(- ports: \[2368\/tcp\].*\n\s+from: )\[any\]/,
      '$1[host]',
    );
    expect(tightened).not.toEqual(initialPolicy(inv));
    const plan = diff(compile(parsed(tightened), inv), dockerHost());
    expect(plan.steps.length).toBeGreaterThan(0);
    const ghost = plan.exposures.find((e) => e.container === 'ghost' && e.port === 2368);
    expect(ghost?.paths.map((p) => p.now)).toEqual([
      { anyone: false, sources: [] },
      { anyone: false, sources: [] },
    ]);
  });

  test('awkward names, compose, ranges, bound addresses, sctp, stopped and portless containers', () => {
    const long = `svc-${'x'.repeat(70)}`;
    const inv = inventory(
      container('true', '172.17.0.2', [{ host: 80 }]),
      container('123', '172.17.0.3', [{ host: 81, protocol: 'udp' }]),
      container(long, '172.17.0.4', [{ host: 82 }]),
      // A name that is exactly the 63-character prefix a derived key of `long` would take.
      container(long.slice(0, 63), '172.17.0.5', [{ host: 83 }]),
      withLabels(container('blog-ghost-1', '172.18.0.2', [{ host: 2368 }]), {
        'com.docker.compose.project': 'blog',
        'com.docker.compose.service': 'ghost',
      }),
      container('ranges', '172.17.0.6', [
        ...[8000, 8001, 8002, 8003].map((host) => ({ host })),
        { host: 8005, container: 9005 },
      ]),
      {
        ...container('bound', '172.17.0.7'),
        ports: [
          { hostIp: '192.0.2.5', hostPort: 8080, containerPort: 80, protocol: 'tcp' },
          { hostIp: '127.0.0.1', hostPort: 6379, containerPort: 6379, protocol: 'tcp' },
          { hostIp: '0.0.0.0', hostPort: 5000, containerPort: 5000, protocol: 'sctp' },
        ],
      },
      container('redis', '172.17.0.8', []),
      container('stopped', '172.17.0.9', [{ host: 9999 }], { state: 'exited' }),
    );
    const text = initialPolicy(inv);
    const policy = expectFaithful(inv);
    const groups = new Map(policy.containers.map((g) => [g.name, g]));

    // YAML would read `true` and `123` as a boolean and a number: they must stay strings.
    expect(groups.get('true')?.select).toEqual({ kind: 'name', names: ['true'] });
    expect(groups.get('123')?.select).toEqual({ kind: 'name', names: ['123'] });
    // Too long for a group key: a derived key that does not collide, selecting by name.
    const longGroup = policy.containers.find(
      (g) => g.select.kind === 'name' && g.select.names.includes(long),
    );
    expect(longGroup?.name).not.toEqual(long.slice(0, 63));
    expect(longGroup?.name.length).toBeLessThanOrEqual(63);
    expect(groups.get(long.slice(0, 63))?.select).toEqual({
      kind: 'name',
      names: [long.slice(0, 63)],
    });

    expect(text).toContain('# Started by compose project blog, service ghost. To follow it');
    expect(text).toContain('#   select: { compose: { project: blog, service: ghost } }');
    expect(groups.get('ranges')?.ingress.map((r) => r.ports)).toEqual([
      [{ protocol: 'tcp', first: 8000, last: 8003 }],
      [{ protocol: 'tcp', first: 8005, last: 8005 }],
    ]);
    expect(text).toContain('→ container 8000-8003/tcp');
    expect(text).toContain('→ container 9005/tcp');
    expect(text).toContain('on 192.0.2.5 (the rule applies to the port on every host address)');
    expect(text).toContain('127.0.0.1:6379 → 6379/tcp is published on loopback only');
    expect(text).toContain("5000/sctp: moat's policy covers tcp and udp only");
    expect(groups.get('redis')).toMatchObject({ ingress: [], select: { names: ['redis'] } });
    expect(groups.has('stopped')).toBe(false);
    expect(text).toContain('# Not running now, so not listed: stopped.');
  });

  test('no running container: a valid policy with no groups', () => {
    const text = initialPolicy(inventory());
    expect(parsed(text).containers).toEqual([]);
    expectFaithful(inventory());
  });

  test('any inventory Docker could report gives a policy whose first plan is empty', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$/);
    const port = fc.record({
      hostIp: fc.constantFrom('0.0.0.0', '::', '127.0.0.1', '::1', '192.0.2.7'),
      hostPort: fc.integer({ min: 1, max: 65535 }),
      containerPort: fc.integer({ min: 1, max: 65535 }),
      protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const),
    });
    const one = fc.record({
      name,
      running: fc.boolean(),
      ports: fc.array(port, { maxLength: 6 }),
      compose: fc.option(fc.tuple(name, name), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.uniqueArray(one, { selector: (c) => c.name, maxLength: 8 }), (specs) => {
        const inv = inventory(
          ...specs.map((s, i) => ({
            ...container(s.name, `172.17.0.${i + 2}`, [], {
              state: s.running ? 'running' : 'exited',
            }),
            ports: s.ports,
            labels:
              s.compose === undefined
                ? {}
                : {
                    'com.docker.compose.project': s.compose[0],
                    'com.docker.compose.service': s.compose[1],
                  },
          })),
        );
        expectFaithful(inv);
      }),
      { numRuns: 200 },
    );
  });
});

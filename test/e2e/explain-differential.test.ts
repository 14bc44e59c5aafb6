/**
 * The packet-path evaluator against the kernel. On real Docker hosts (20.10 from PATH and a
 * current release), with generated policies applied by the CLI, every probe is sent for real
 * (curl from the wan namespace and the host, busybox nc from containers; IPv4 and IPv6) and
 * evaluated on the ruleset read back with `moat snapshot`; the two must agree. The ruleset
 * `--after-plan` predicted before the apply must give the same verdicts as the one applied.
 *
 *   wan  198.51.100.2, .200 and 2001:db8:100::2, ::200 (httpd :80); "anyone" gets the address
 *        the evaluator picks for it, routed through wan (the host's default route)
 *   host 198.51.100.1, 2001:db8:100::1
 *   containers: ghost (default bridge, -p 2368), api (-p 8080:80) and worker on appnet (IPv4 and
 *        IPv6); on 28.5.2 also r1 (-p 8088:80) on a routed-gateway network and u1 (-p 8090:80)
 *        on a nat-unprotected one
 *
 * The agreement figure and every "unknown" are printed (and written to MOAT_EXPLAIN_REPORT
 * when set). MOAT_EXPLAIN_SEED replays a run's policies; MOAT_EXPLAIN_POLICIES sets how many.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { compile } from '../../src/compile/compile.js';
import { hostFacts } from '../../src/compile/host-facts.js';
import { contains, parseAddress, parsePrefix } from '../../src/explain/address.js';
import { worldAfterPlan } from '../../src/explain/after-plan.js';
import type { ProbeOutcome, World } from '../../src/explain/model.js';
import { explain, parseSource, parseTarget } from '../../src/explain/query.js';
import { renderTrail } from '../../src/explain/render.js';
import { readWorldFromSnapshot } from '../../src/host/world.js';
import { diff } from '../../src/plan/diff.js';
import { parsePolicy } from '../../src/policy/parse.js';
import { DockerSandbox, HOST_V4, HOST_V6, WAN_V4, WAN_V6 } from '../support/docker-sandbox.js';
import { dockerRelease } from '../support/docker-release.js';
import { rulesets } from '../support/e2e-moat.js';
import { moat, PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ip', 'ipset', 'busybox', 'curl'] as const;
/** Docker releases to run (MOAT_EXPLAIN_RELEASES=20.10,28.5.2,29.7.2 for others). */
const RELEASES = (process.env.MOAT_EXPLAIN_RELEASES ?? '20.10,28.5.2').split(',');
const WAN_V4_B = '198.51.100.200';
const WAN_V6_B = '2001:db8:100::200';
/** Generated policies per release, after the empty one (MOAT_EXPLAIN_POLICIES for more). */
const POLICIES_PER_RELEASE = Number(process.env.MOAT_EXPLAIN_POLICIES ?? 2);
const PROBE_SECONDS = 2;

// --- what was seen, for the report --------------------------------------------------------------

interface Row {
  readonly release: string;
  readonly policy: number;
  readonly probe: string;
  readonly real: boolean;
  readonly verdict: ProbeOutcome['verdict'];
  readonly predicted: ProbeOutcome['verdict'];
  readonly reason: string;
}
const rows: Row[] = [];

function report(): string {
  const decided = rows.filter((r) => r.verdict !== 'unknown');
  const agree = decided.filter((r) => (r.verdict === 'reachable') === r.real);
  const unknown = rows.filter((r) => r.verdict === 'unknown');
  const classes = new Map<string, number>();
  for (const r of unknown) classes.set(r.reason, (classes.get(r.reason) ?? 0) + 1);
  const predicted = rows.filter((r) => r.predicted === r.verdict);
  const reached = rows.filter((r) => r.real).length;
  const lines = [
    `explain vs kernel: ${agree.length}/${decided.length} decided probes agree` +
      ` (${decided.length === 0 ? 0 : ((100 * agree.length) / decided.length).toFixed(1)}%),` +
      ` ${unknown.length} unknown of ${rows.length} (${reached} reached, ${rows.length - reached} not);` +
      ` --after-plan predicted ${predicted.length}/${rows.length}`,
    ...[...classes].map(([reason, n]) => `  unknown ×${n}: ${reason}`),
  ];
  return lines.join('\n');
}

// --- generated policies ---------------------------------------------------------------------------

/** mulberry32: a small seeded generator, so a run's policies can be replayed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rng: () => number, items: readonly T[], max: number): T[] {
  const out = items.filter(() => rng() < 0.5);
  if (out.length === 0 && items.length > 0) out.push(items[Math.floor(rng() * items.length)] as T);
  return out.slice(0, max);
}

const SOURCES = [
  'host',
  WAN_V4,
  '198.51.100.0/25',
  '198.51.100.128/25',
  WAN_V6,
  '2001:db8:100::/120',
  'ipset:clients',
  'container:worker',
];
const DESTINATIONS = [WAN_V4, '198.51.100.0/24', WAN_V6, '172.30.0.0/24', 'fd00:db8:30::/64'];

function randomPolicy(rng: () => number, published: readonly Published[]): string {
  const groups: string[] = [];
  const usesSet = { value: false };
  for (const p of published) {
    const lines: string[] = [];
    if (rng() < 0.7) {
      const from = rng() < 0.1 ? ['any'] : pick(rng, SOURCES, 3);
      if (from.includes('ipset:clients')) usesSet.value = true;
      lines.push(
        '    ingress:',
        `      - ports: [${p.hostPort}/tcp]`,
        `        from: [${from.join(', ')}]`,
      );
    }
    if (rng() < 0.5) {
      const deny = rng() < 0.5;
      const to = pick(rng, DESTINATIONS, 2);
      const ports = rng() < 0.5 ? '\n          ports: [80/tcp]' : '';
      lines.push(
        '    egress:',
        `      default: ${deny ? 'deny' : 'allow'}`,
        `      ${deny ? 'allow' : 'deny'}:`,
        `        - to: [${to.join(', ')}]${ports}`,
      );
    }
    groups.push(`  ${p.container}:${lines.length === 0 ? ' {}' : ''}`, ...lines);
  }
  groups.push('  worker: {}');
  const entries = pick(rng, [WAN_V4, '198.51.100.192/26', '10.0.0.0/8'], 3);
  return [
    'version: 1',
    `defaults:\n  ingress: ${rng() < 0.3 ? 'host' : 'allow'}`,
    ...(usesSet.value
      ? [
          `ipsets:\n  clients:\n    family: ipv4\n    type: hash:net\n    entries: [${entries.join(', ')}]`,
        ]
      : []),
    'containers:',
    ...groups,
    '',
  ].join('\n');
}

// --- the lab ----------------------------------------------------------------------------------------

interface Published {
  readonly container: string;
  readonly hostPort: number;
  readonly containerPort: number;
}

interface Probe {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  /** Where the real probe runs: the wan namespace (from an address), the host, a container. */
  readonly via:
    | { readonly kind: 'wan'; readonly source: string }
    | { readonly kind: 'host' }
    | { readonly kind: 'container'; readonly name: string };
}

function hostPort(target: string): [string, string] {
  const m = /^\[?([^\]]*)\]?:(\d+)\/tcp$/.exec(target);
  return [m?.[1] ?? '', m?.[2] ?? ''];
}

class Lab {
  sandbox: DockerSandbox | undefined;
  readonly policy = new PolicyDir();
  private readonly scratch = mkdtempSync(join(tmpdir(), 'moat-explain-'));
  private server: ChildProcess | undefined;
  readonly published: Published[] = [];
  readonly containers: { name: string; ipv4: string; ipv6?: string; port: number }[] = [];
  private snapshots = 0;
  private pids: string[] | undefined;
  /** The host's World as last read, after the last apply. */
  last: World | undefined;

  constructor(readonly release: string) {}

  async start(binDir: string | undefined): Promise<DockerSandbox> {
    const sandbox = await DockerSandbox.start(binDir === undefined ? {} : { binDir });
    this.sandbox = sandbox;
    const current = !this.release.startsWith('20.') && !this.release.startsWith('26.');
    sandbox.docker([
      'network',
      'create',
      '--ipv6',
      '--subnet',
      '172.30.0.0/24',
      '--subnet',
      'fd00:db8:30::/64',
      'appnet',
    ]);
    this.run('ghost', 2368, 2368, []);
    this.run('api', 8080, 80, ['--network', 'appnet']);
    this.run('worker', undefined, 80, ['--network', 'appnet']);
    if (current) {
      const mode = (m: string) => [
        '-o',
        `com.docker.network.bridge.gateway_mode_ipv4=${m}`,
        '-o',
        `com.docker.network.bridge.gateway_mode_ipv6=${m}`,
      ];
      sandbox.docker([
        'network',
        'create',
        '--ipv6',
        ...mode('routed'),
        '--subnet',
        '172.31.0.0/24',
        '--subnet',
        'fd00:db8:31::/64',
        'routednet',
      ]);
      sandbox.docker([
        'network',
        'create',
        ...mode('nat-unprotected'),
        '--subnet',
        '172.29.0.0/24',
        'unprot',
      ]);
      this.run('r1', 8088, 80, ['--network', 'routednet']);
      this.run('u1', 8090, 80, ['--network', 'unprot']);
    }
    const wan = (...args: string[]) => sandbox.wan.exec('ip', args);
    wan('addr', 'add', `${WAN_V4_B}/24`, 'dev', 'vd1');
    wan('-6', 'addr', 'add', `${WAN_V6_B}/64`, 'dev', 'vd1', 'nodad');
    wan('route', 'add', '172.16.0.0/12', 'via', HOST_V4);
    wan('-6', 'route', 'add', 'fd00::/8', 'via', HOST_V6);
    // "anyone" reaches the host through wan, and is answered back the same way.
    sandbox.host.exec('ip', ['route', 'add', 'default', 'via', WAN_V4]);
    sandbox.host.exec('ip', ['-6', 'route', 'add', 'default', 'via', WAN_V6]);
    const docroot = join(this.scratch, 'www');
    spawnSync('mkdir', ['-p', docroot]);
    writeFileSync(join(docroot, 'index.html'), 'wan\n');
    this.server = spawn(
      'ip',
      ['netns', 'exec', sandbox.wan.name, 'busybox', 'httpd', '-f', '-p', '80', '-h', docroot],
      { stdio: 'ignore' },
    );
    this.server.on('error', () => undefined);
    return sandbox;
  }

  private run(name: string, published: number | undefined, port: number, args: string[]): void {
    const sandbox = this.sandbox as DockerSandbox;
    sandbox.runHttpd(name, published === undefined ? [] : [`${published}:${port}`], args, port);
    if (published !== undefined)
      this.published.push({ container: name, hostPort: published, containerPort: port });
    const [ipv4 = '', ipv6 = ''] = sandbox
      .docker([
        'inspect',
        '--format',
        '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}',
        name,
      ])
      .trim()
      .split(/\s+/);
    this.containers.push({ name, ipv4, ...(ipv6 === '' ? {} : { ipv6 }), port });
    // A new IPv6 address is tentative until duplicate address detection ends (about 2 s).
    if (ipv6 !== '') {
      const deadline = Date.now() + 15_000;
      for (let i = 0; i < 150 && Date.now() < deadline; i++) {
        if (sandbox.httpStatusFromHost(`http://[${ipv6}]:${port}/`, 1) !== '000') return;
        spawnSync('sleep', ['0.1']);
      }
      throw new Error(`${name} does not answer on [${ipv6}]:${port}`);
    }
  }

  async world(): Promise<World> {
    const dir = join(this.scratch, `snapshot-${this.snapshots++}`);
    const sandbox = this.sandbox as DockerSandbox;
    const result = moat(sandbox, ['snapshot', '--out', dir], sandbox.env);
    if (result.status !== 0) throw new Error(`moat snapshot: ${result.stderr}`);
    return readWorldFromSnapshot(dir);
  }

  /** The probes: wan sources, the host and each container, to every published port and container. */
  probes(anyone: { ipv4?: string; ipv6?: string }): Probe[] {
    const out: Probe[] = [];
    const add = (from: string, to: string, via: Probe['via']) =>
      out.push({ id: `p${out.length}`, from, to, via });
    const v6 = (a: string) => `[${a}]`;
    const hostTargets = this.published.flatMap((p) => [
      `${HOST_V4}:${p.hostPort}/tcp`,
      `${v6(HOST_V6)}:${p.hostPort}/tcp`,
    ]);
    const direct = this.containers.flatMap((c) => [
      `${c.ipv4}:${c.port}/tcp`,
      ...(c.ipv6 === undefined ? [] : [`${v6(c.ipv6)}:${c.port}/tcp`]),
    ]);
    const wanSources = [
      WAN_V4,
      WAN_V4_B,
      WAN_V6,
      WAN_V6_B,
      ...(anyone.ipv4 === undefined ? [] : [anyone.ipv4]),
      ...(anyone.ipv6 === undefined ? [] : [anyone.ipv6]),
    ];
    for (const source of wanSources) {
      const family6 = source.includes(':');
      for (const to of [...hostTargets, ...direct].filter((t) => t.startsWith('[') === family6)) {
        const from = source === anyone.ipv4 || source === anyone.ipv6 ? 'anyone' : source;
        add(from, to, { kind: 'wan', source });
      }
    }
    for (const to of [
      ...hostTargets,
      ...direct,
      ...this.published.map((p) => `127.0.0.1:${p.hostPort}/tcp`),
    ])
      add('host', to, { kind: 'host' });
    for (const c of this.containers) {
      const targets = [
        `${WAN_V4}:80/tcp`,
        ...this.published.map((p) => `${HOST_V4}:${p.hostPort}/tcp`),
        ...direct.filter((t) => !t.startsWith('[')),
      ];
      if (c.ipv6 !== undefined)
        targets.push(`${v6(WAN_V6)}:80/tcp`, ...direct.filter((t) => t.startsWith('[')));
      for (const to of targets)
        if (
          !to.startsWith(`${c.ipv4}:`) &&
          !(c.ipv6 !== undefined && to.startsWith(`${v6(c.ipv6)}:`))
        )
          add(`container:${c.name}`, to, { kind: 'container', name: c.name });
    }
    return out;
  }

  /**
   * Sends every probe for real; id → reached. IPv6 neighbour caches are emptied before each
   * phase, and probes that would warm each other's caches run in different phases: a node that
   * received a neighbour solicitation knows the sender without asking, so a container another
   * node solicited could skip the discovery the evaluator models (cold caches).
   */
  async sendAll(probes: readonly Probe[]): Promise<Map<string, boolean>> {
    const results = new Map<string, boolean>();
    const bridgedV6 = probes.filter((p) => this.bridgedV6(p));
    const phases = [
      probes.filter((p) => p.via.kind !== 'container'),
      probes.filter((p) => p.via.kind === 'container' && !bridgedV6.includes(p)),
      ...bridgedV6.map((p) => [p]),
    ];
    for (const phase of phases) {
      await this.flushNeighbours();
      for (const [id, reached] of await this.send(phase)) results.set(id, reached);
    }
    return results;
  }

  /** A container to a neighbour's IPv6 address on its own bridge (switched, not routed). */
  private bridgedV6(p: Probe): boolean {
    if (p.via.kind !== 'container' || !p.to.startsWith('[')) return false;
    const name = p.via.name;
    const source = this.containers.find((c) => c.name === name)?.ipv6;
    const net = source === undefined ? undefined : parsePrefix(`${source}/64`);
    const target = parseAddress(hostPort(p.to)[0]);
    return net !== undefined && target !== undefined && contains(net, target);
  }

  private async flushNeighbours(): Promise<void> {
    const sandbox = this.sandbox as DockerSandbox;
    const flush = ['ip', '-6', 'neigh', 'flush', 'all'];
    this.pids ??= this.containers.map((c) =>
      sandbox.docker(['inspect', '--format', '{{.State.Pid}}', c.name]).trim(),
    );
    const pids = this.pids;
    await Promise.all([
      run('nsenter', [`--net=${sandbox.host.path}`, ...flush]),
      run('nsenter', [`--net=${sandbox.wan.path}`, ...flush]),
      ...pids.map((pid) => run('nsenter', [`--net=/proc/${pid}/ns/net`, ...flush])),
    ]);
  }

  private async send(probes: readonly Probe[]): Promise<Map<string, boolean>> {
    const sandbox = this.sandbox as DockerSandbox;
    const results = new Map<string, boolean>();
    const collect = (stdout: string) => {
      for (const line of stdout.split('\n')) {
        const [id, code] = line.trim().split(' ');
        if (id !== undefined && id !== '')
          results.set(id, code !== undefined && code !== '000' && code !== '0');
      }
    };
    const connect = (p: Probe, source?: string) => {
      const [address, port] = hostPort(p.to);
      return {
        id: p.id,
        host: address,
        port: Number(port),
        ...(source === undefined ? {} : { localAddress: source }),
      };
    };
    const sourceOf = (p: Probe) => (p.via.kind === 'wan' ? p.via.source : '');
    const wan = probes.filter((p) => p.via.kind === 'wan');
    const anyone = [...new Set(wan.filter((p) => p.from === 'anyone').map(sourceOf))];
    const withPrefix = (a: string) => (a.includes(':') ? `${a}/128` : `${a}/32`);
    for (const a of anyone) sandbox.wan.exec('ip', ['addr', 'add', withPrefix(a), 'dev', 'lo']);
    const host = probes.filter((p) => p.via.kind === 'host');
    const shell = (lines: readonly string[]) => `${lines.join('\n')}\nwait`;
    // One node process per namespace opens all its connections at once (forty curls at once
    // take seconds each to start on a busy two-core machine).
    const node = (ns: string, list: readonly Probe[], source: (p: Probe) => string | undefined) =>
      run('nsenter', [
        `--net=${ns}`,
        process.execPath,
        '-e',
        PROBER,
        JSON.stringify(list.map((p) => connect(p, source(p)))),
      ]);
    const batches: Promise<string>[] = [];
    if (wan.length > 0) batches.push(node(sandbox.wan.path, wan, sourceOf));
    if (host.length > 0) batches.push(node(sandbox.host.path, host, () => undefined));
    for (const c of this.containers) {
      const mine = probes.filter((p) => p.via.kind === 'container' && p.via.name === c.name);
      if (mine.length === 0) continue;
      const lines = mine.map((p) => {
        const [address, port] = hostPort(p.to);
        return `(r=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w ${PROBE_SECONDS} ${address} ${port} 2>/dev/null | cat); case "$r" in HTTP*) echo "${p.id} 1";; *) echo "${p.id} 0";; esac) &`;
      });
      batches.push(run('docker', ['exec', c.name, 'sh', '-c', shell(lines)], sandbox.env));
    }
    try {
      for (const stdout of await Promise.all(batches)) collect(stdout);
    } finally {
      for (const a of anyone) sandbox.wan.run('ip', ['addr', 'del', withPrefix(a), 'dev', 'lo']);
    }
    return results;
  }

  async stop(): Promise<void> {
    this.server?.kill('SIGKILL');
    try {
      await this.sandbox?.stop();
    } finally {
      this.policy.remove();
      rmSync(this.scratch, { recursive: true, force: true });
    }
  }
}

/**
 * Opens a TCP connection to each `{id, host, port, localAddress?}` of argv[1] at once, sends an
 * HTTP/1.0 request and prints `id 1` when an HTTP answer came back, `id 0` otherwise.
 */
const PROBER = `
const net = require('node:net');
for (const p of JSON.parse(process.argv[1])) {
  let done = false;
  const finish = (ok) => { if (!done) { done = true; process.stdout.write(p.id + (ok ? ' 1' : ' 0') + '\\n'); socket.destroy(); } };
  const socket = net.connect({ host: p.host, port: p.port, localAddress: p.localAddress });
  socket.setTimeout(${PROBE_SECONDS * 1000}, () => finish(false));
  socket.on('connect', () => socket.write('GET / HTTP/1.0\\r\\n\\r\\n'));
  socket.on('data', (d) => finish(d.toString('latin1').startsWith('HTTP/')));
  socket.on('error', () => finish(false));
  socket.on('close', () => finish(false));
}`;

/** A command's stdout; bounded in time. */
function run(
  command: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else
        reject(
          new Error(
            `${command} ${args.slice(0, 3).join(' ')} exited ${code ?? 'by a signal'}: ${Buffer.concat(err).toString('utf8')}`,
          ),
        );
    });
  });
}

function verdictOf(world: World, probe: Probe): ProbeOutcome {
  const explanation = explain(world, parseSource(probe.from), parseTarget(probe.to));
  const answer = explanation.answers[0];
  const found = answer?.probes[0]?.outcome;
  if (found !== undefined) return found;
  return { verdict: 'blocked', reason: answer?.note ?? 'no probe', trail: [], unmodelled: [] };
}

function anyoneOf(world: World): { ipv4?: string; ipv6?: string } {
  const out: { ipv4?: string; ipv6?: string } = {};
  for (const answer of explain(world, parseSource('anyone'), parseTarget(`${HOST_V4}:1/tcp`))
    .answers) {
    const a = answer.probes[0]?.from.address;
    if (a !== undefined) out[answer.family] = a;
  }
  for (const answer of explain(world, parseSource('anyone'), parseTarget(`[${HOST_V6}]:1/tcp`))
    .answers) {
    const a = answer.probes[0]?.from.address;
    if (a !== undefined) out[answer.family] = a;
  }
  return out;
}

const seed = Number(process.env.MOAT_EXPLAIN_SEED ?? Date.now() % 100_000);

for (const release of RELEASES) {
  const available = dockerRelease(release);
  const body = () => {
    const lab = new Lab(release);
    let sandbox: DockerSandbox;
    const rng = generator(seed + release.length);

    beforeAll(async () => {
      if (available instanceof Error) throw available;
      sandbox = await lab.start(available.binDir);
    }, 300_000);
    afterAll(() => lab.stop(), 120_000);

    const policies = [
      () => 'version: 1\n',
      ...Array.from({ length: POLICIES_PER_RELEASE }, () => () => randomPolicy(rng, lab.published)),
    ];
    policies.forEach((make, index) => {
      test(`policy ${index} (seed ${seed}): every probe's real outcome is the evaluator's verdict`, async () => {
        const text = make();
        // The host as the previous test left it (read once there).
        const before = lab.last ?? (await lab.world());
        const parsed = parsePolicy(text, 'firewall.yaml');
        if (parsed.policy === undefined)
          throw new Error(
            `generated policy invalid:\n${text}\n${JSON.stringify(parsed.diagnostics)}`,
          );
        const predictedWorld = worldAfterPlan(
          before,
          diff(
            compile(parsed.policy, before.inventory, hostFacts(before.netfilter)),
            before.netfilter,
          ),
        );
        const applied = moat(
          sandbox,
          ['apply', '-f', lab.policy.write(text), '--auto-approve'],
          sandbox.env,
        );
        if (applied.status !== 0)
          throw new Error(`moat apply: ${applied.stdout}\n${applied.stderr}`);
        const world = await lab.world();
        lab.last = world;
        const probes = lab.probes(anyoneOf(world));
        const real = await lab.sendAll(probes);
        const wrong: string[] = [];
        for (const probe of probes) {
          const outcome = verdictOf(world, probe);
          const predicted = verdictOf(predictedWorld, probe);
          const reached = real.get(probe.id);
          if (reached === undefined) throw new Error(`probe ${probe.id} sent no answer`);
          rows.push({
            release,
            policy: index,
            probe: `${probe.from} → ${probe.to}`,
            real: reached,
            verdict: outcome.verdict,
            predicted: predicted.verdict,
            reason: outcome.reason,
          });
          const disagrees =
            outcome.verdict !== 'unknown' && (outcome.verdict === 'reachable') !== reached;
          if (disagrees || predicted.verdict !== outcome.verdict)
            wrong.push(
              [
                `${probe.from} → ${probe.to}: kernel ${reached ? 'reached' : 'not reached'}, evaluator ${outcome.verdict} (${outcome.reason}), --after-plan ${predicted.verdict}`,
                ...renderTrail(outcome.trail, () => undefined, '    '),
              ].join('\n'),
            );
        }
        if (wrong.length > 0)
          throw new Error(`${wrong.join('\n')}\n--- policy ---\n${text}\n${rulesets(sandbox)}`);
        expect(probes.length).toBeGreaterThan(50);
      }, 180_000);
    });
  };
  if (available instanceof Error && process.env.CI !== 'true')
    describe.skip(`explain vs the kernel, Docker ${release} [skipped: ${available.message}]`, body);
  else describeWith(NEEDS, `explain vs the kernel, Docker ${release}`, body);
}

afterAll(() => {
  if (rows.length === 0) return;
  const text = report();
  console.log(text);
  if (process.env.MOAT_EXPLAIN_REPORT !== undefined)
    writeFileSync(process.env.MOAT_EXPLAIN_REPORT, `${text}\n${JSON.stringify(rows, null, 1)}\n`);
});

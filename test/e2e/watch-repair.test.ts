/**
 * `moat watch` with its default options repairs moat's chains, jumps and sets within seconds of
 * someone changing them, with real iptables, ipset and dockerd in a network namespace: on Docker
 * 20.10 (both iptables backends), 28.5.2, and 29.7.2 with Docker's nftables firewall backend,
 * where there is no DOCKER-USER and the tampering follows moat's jumps to FORWARD. The repaired
 * rules hold real packets, over IPv4 and IPv6; and a program that keeps undoing the repair is
 * detected and backed off.
 *
 * The legacy run puts `iptables` → iptables-legacy first on PATH for everything the test starts
 * (dockerd included): a legacy Docker host. The bound asserted here is generous (10 s); the
 * real latency is printed, and `npm run bench` measures it (docs/performance.md).
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HOST_V4, HOST_V6 } from '../support/docker-sandbox.js';
import { describeOnDocker, type DockerTarget } from '../support/docker-targets.js';
import { useLab, type IpFamily } from '../support/lab.js';
import type { RunningWatch } from '../support/moat-watch.js';
import { describeWith } from '../support/prereq.js';

const NEEDS = ['root', 'dockerd', 'iptables', 'ipset', 'ip', 'busybox', 'curl'] as const;

// The wan client (198.51.100.2, 2001:db8:100::2) is in no source: 2368 is closed to it.
const POLICY = `version: 1
ipsets:
  office:
    entries: [198.51.100.128/25, 203.0.113.7]
  spare:
    entries: [192.0.2.1]
containers:
  ghost:
    ingress:
      - ports: [2368/tcp]
        from: [host, ipset:office]
`;

const REPAIR_BOUND_MS = 10_000;
const LEGACY_TOOLS = [
  'iptables',
  'iptables-save',
  'iptables-restore',
  'ip6tables',
  'ip6tables-save',
  'ip6tables-restore',
];

type Backend = 'nft' | 'legacy';

/** The chain holding moat's forward jump, per family: DOCKER-USER where Docker made one. */
type ForwardHooks = Record<IpFamily, 'DOCKER-USER' | 'FORWARD'>;

function forwardHooks(target: DockerTarget): ForwardHooks {
  return {
    ipv4: target.dockerUser ? 'DOCKER-USER' : 'FORWARD',
    // Before 27, Docker leaves ip6tables alone unless told to: no DOCKER-USER in IPv6.
    ipv6: target.dockerUser && target.ip6tablesByDefault ? 'DOCKER-USER' : 'FORWARD',
  };
}

/** Puts `iptables*` → iptables-legacy first on PATH for the describe (before the lab starts). */
function useLegacyIptables(): void {
  let shim: string | undefined;
  let savedPath: string | undefined;
  beforeAll(() => {
    shim = mkdtempSync(join(tmpdir(), 'moat-legacy-bin-'));
    for (const tool of LEGACY_TOOLS)
      symlinkSync('/usr/sbin/xtables-legacy-multi', join(shim, tool));
    savedPath = process.env.PATH;
    process.env.PATH = `${shim}:${savedPath ?? ''}`;
  });
  afterAll(() => {
    if (savedPath !== undefined) process.env.PATH = savedPath;
    if (shim !== undefined) rmSync(shim, { recursive: true, force: true });
  });
}

interface Tamper {
  name: string;
  /** A shell script run in the Docker host's namespace. */
  script: string;
  /**
   * Everything watch must say had drifted, and nothing else: one item per step (a pattern
   * where a name is a hash). A probe may notice parts apart (legacy: the table and the sets
   * are polled on their own), so the items may come in more than one repair.
   */
  drift: readonly (string | RegExp)[];
}

/** A script deleting the jump to `target` from `chain`, by its spec. */
const deleteJump = (tool: string, chain: string, target: string): string =>
  `${tool} -S ${chain} | grep -e '-j ${target}$' | sed 's/^-A/-D/' | xargs ${tool}`;

function tampers(hooks: ForwardHooks): Tamper[] {
  return [
    {
      name: 'iptables -F MOAT-FORWARD',
      script: 'iptables -F MOAT-FORWARD',
      drift: ['update-chain ipv4 MOAT-FORWARD'],
    },
    {
      name: `deleting moat's jump from ${hooks.ipv4}`,
      script: deleteJump('iptables', hooks.ipv4, 'MOAT-FORWARD'),
      drift: [`add-jump ipv4 ${hooks.ipv4}`],
    },
    {
      name: `iptables -F ${hooks.ipv4} (a firewall reload)`,
      script: `iptables -F ${hooks.ipv4}`,
      drift: [`add-jump ipv4 ${hooks.ipv4}`],
    },
    {
      name: "deleting moat's jump from INPUT",
      script: deleteJump('iptables', 'INPUT', 'MOAT-INPUT'),
      drift: ['add-jump ipv4 INPUT'],
    },
    {
      name: `deleting moat's IPv6 jump from ${hooks.ipv6}`,
      script: deleteJump('ip6tables', hooks.ipv6, 'MOAT-FORWARD'),
      drift: [`add-jump ipv6 ${hooks.ipv6}`],
    },
    {
      name: 'iptables -F MOAT-INGRESS',
      script: 'iptables -F MOAT-INGRESS',
      drift: ['update-chain ipv4 MOAT-INGRESS'],
    },
    {
      name: 'ip6tables -F MOAT-INPUT',
      script: 'ip6tables -F MOAT-INPUT',
      drift: ['update-chain ipv6 MOAT-INPUT'],
    },
    {
      name: 'ipset flush of a moat set',
      script: 'ipset flush moat-office',
      drift: ['update-set moat-office'],
    },
    {
      name: 'ipset destroy of an unused moat set',
      script: 'ipset destroy moat-spare',
      drift: ['create-set moat-spare'],
    },
    {
      name: 'ipset destroy of a used moat set, after flushing the chain that uses it',
      script:
        'chain=$(iptables-save -t filter | sed -n "s/^-A \\(MOAT-SRC-[0-9a-f]*\\) .*match-set moat-office.*/\\1/p" | head -1); ' +
        'iptables -F "$chain" && ipset destroy moat-office',
      drift: ['create-set moat-office', /^update-chain ipv4 MOAT-SRC-[0-9a-f]+$/],
    },
    {
      name: 'a full iptables-restore without moat (a firewall reload that rewrites the table)',
      script: 'iptables-save -t filter | grep -v -e MOAT -e moat | iptables-restore',
      drift: [
        ...['FORWARD', 'INPUT', 'INGRESS', 'DIRECT', 'DIRECT-PORTS'].map(
          (c) => `create-chain ipv4 MOAT-${c}`,
        ),
        /^create-chain ipv4 MOAT-SRC-[0-9a-f]+$/,
        `add-jump ipv4 ${hooks.ipv4}`,
        'add-jump ipv4 INPUT',
      ],
    },
  ];
}

/** Runs a shell script in the host namespace without blocking this process's event loop. */
function hostScript(hostPath: string, script: string): Promise<number | null> {
  const child = spawn('nsenter', [`--net=${hostPath}`, 'sh', '-c', script], { stdio: 'ignore' });
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      resolve(code);
    }),
  );
}

describeOnDocker(
  ['20.10.24', '28.5.2', '29.7.2-nftables'],
  NEEDS,
  'watch repairs tampering',
  (target) => {
    // Legacy iptables only where Docker still ran on it (Debian 12's 20.10).
    const backends: Backend[] = target.release === '20.10.24' ? ['nft', 'legacy'] : ['nft'];
    for (const backend of backends)
      describeWith(backend === 'legacy' ? ['iptables-legacy'] : [], `iptables ${backend}`, () => {
        repairSuite(target, backend);
      });
  },
);

function repairSuite(target: DockerTarget, backend: Backend): void {
  const hooks = forwardHooks(target);
  const TAMPERS = tampers(hooks);
  if (backend === 'legacy') useLegacyIptables();
  let watch: RunningWatch | undefined;
  const lab = useLab({ target }, async (lab) => {
    if (target.ip6tablesByDefault) {
      // Docker 27+ DNATs IPv6 too on an --ipv6 network: the wan's IPv6 goes through FORWARD.
      lab.createNetwork('v6', { subnet4: '172.29.0.0/24', subnet6: '2001:db8:29::/64' });
      lab.runHttpd('ghost', ['2368:2368'], ['--network', 'v6'], 2368);
    } else {
      lab.runHttpd('ghost', ['2368:2368'], [], 2368);
    }
    lab.policy.write(POLICY);
    const metricsFile = join(lab.policy.dir, 'moat.prom');
    watch = lab.startWatch(['-f', lab.policy.file, '--metrics-file', metricsFile]);
    if (!(await watch.waitFor(/noticing changes with .*ipset/, 30_000)))
      throw new Error(`watch did not start:\n${watch.output}`);
  });
  const metrics = join(lab.policy.dir, 'moat.prom');
  const latencies: string[] = [];
  const running = (): RunningWatch => {
    if (watch === undefined) throw new Error('watch did not start (did beforeAll fail?)');
    return watch;
  };

  afterAll(async () => {
    // The lab has stopped it already (before its daemon); this is the same exit code.
    const code = await watch?.stop();
    console.log(
      `watch [Docker ${target.name}, iptables ${backend}] repair latencies:\n${latencies.join('\n')}\n` +
        `--- watch's log ---\n${watch?.output ?? ''}`,
    );
    if (watch !== undefined) expect(code).toBe(0);
  }, 60_000);

  const host = (script: string) => lab.execInHost('sh', ['-c', script]);
  /** moat's rules and sets as the kernel holds them, in a comparable form. */
  const moatObjects = (): string => {
    const lines: string[] = [];
    for (const family of ['ipv4', 'ipv6'] as const)
      lines.push(
        ...lab
          .save(family, 'filter')
          .split('\n')
          .filter((l) => /moat|MOAT/.test(l) && !l.startsWith('#')),
      );
    for (const set of ['moat-office', 'moat-spare']) {
      // A re-created or swapped-in set has a new random initval.
      const out = host(`ipset save ${set} 2>/dev/null`).stdout.replace(/ initval \S+/, '');
      lines.push(
        ...out
          .split('\n')
          .filter((l) => l !== '')
          .sort(),
      );
    }
    return lines.join('\n');
  };

  /**
   * Runs `tamper` (watch paused meanwhile, if `whilePaused` is given: it runs then too), waits
   * (bounded) until moat's objects are as before, and checks what watch logged had drifted.
   */
  const tamperAndAwaitRepair = async (
    { name, script, drift }: Tamper,
    whilePaused?: () => void,
  ): Promise<void> => {
    await sleep(500); // the last repair's own changes have settled
    const before = moatObjects();
    expect(before).toContain('-j MOAT-FORWARD');
    const from = running().output.length;
    if (whilePaused !== undefined) running().pause();
    try {
      const tampered = host(script);
      expect({ stderr: tampered.stderr, status: tampered.status }).toEqual({
        stderr: '',
        status: 0,
      });
      whilePaused?.();
    } finally {
      if (whilePaused !== undefined) running().resume();
    }
    const started = Date.now();
    let restored = false;
    while (!restored && Date.now() - started < REPAIR_BOUND_MS) {
      await sleep(50);
      restored = moatObjects() === before;
    }
    const seen = Date.now() - started;
    if (!restored)
      throw new Error(
        `not restored within ${REPAIR_BOUND_MS} ms\n--- expected ---\n${before}\n--- found ---\n${moatObjects()}\n--- watch ---\n${running().output.slice(from)}`,
      );
    // Every item came, in one repair or more (bounded), and nothing else.
    const repairs = (): { ms: string; drift: string[] }[] =>
      [
        ...running()
          .output.slice(from)
          .matchAll(/repaired in (\d+) ms: (.*)/g),
      ].map((m) => ({
        ms: m[1] ?? '?',
        drift: (m[2] ?? '').split(', '),
      }));
    const said = (): string[] => repairs().flatMap((r) => r.drift);
    const matches = (item: string, want: string | RegExp): boolean =>
      typeof want === 'string' ? item === want : want.test(item);
    const covered = (): boolean => drift.every((want) => said().some((i) => matches(i, want)));
    for (let i = 0; i < 250 && !covered(); i++) await sleep(20);
    expect({ said: said(), covered: covered() }).toEqual({ said: said(), covered: true });
    expect(said().filter((item) => !drift.some((want) => matches(item, want)))).toEqual([]);
    const ms = repairs()
      .map((r) => r.ms)
      .join(' + ');
    latencies.push(`  ${name}: watch ${ms} ms, seen restored after ${seen} ms`);
  };

  test('watch notices with the backend it should; its start pass converged', () => {
    expect(running().output).toMatch(
      backend === 'nft'
        ? /noticing changes with xtables-monitor and ipset/
        : /noticing changes with legacy probe and ipset/,
    );
    expect(host('iptables -V').stdout).toContain(backend === 'nft' ? 'nf_tables' : 'legacy');
    expect(lab.moat(['plan', '-f', lab.policy.file, '--detailed-exitcode']).status).toBe(0);
  });

  test(`moat's forward jumps are where the tampering looks: IPv4 ${hooks.ipv4}, IPv6 ${hooks.ipv6}`, () => {
    for (const family of ['ipv4', 'ipv6'] as const) {
      const jumps = lab
        .save(family, 'filter')
        .split('\n')
        .filter((l) => /-j MOAT-FORWARD$/.test(l));
      expect({ family, jumps: jumps.map((l) => l.split(' ')[1]) }).toEqual({
        family,
        jumps: [hooks[family]],
      });
    }
  });

  test.each(TAMPERS)('$name is repaired', (tamper) => tamperAndAwaitRepair(tamper), 30_000);

  // The wan's IPv6 goes through FORWARD where Docker DNATs it (27+), else through docker-proxy.
  const v6Chain = target.ip6tablesByDefault ? 'MOAT-FORWARD' : 'MOAT-INPUT';
  test.each([
    { family: 'ipv4' as const, url: `http://${HOST_V4}:2368/`, chain: 'MOAT-FORWARD' },
    { family: 'ipv6' as const, url: `http://[${HOST_V6}]:2368/`, chain: v6Chain },
  ])(
    'after $chain ($family) is flushed and repaired, the wan is refused on 2368, the host gets in',
    async ({ family, url, chain }) => {
      const tool = family === 'ipv4' ? 'iptables' : 'ip6tables';
      let openWhileTampered: boolean | undefined;
      await tamperAndAwaitRepair(
        {
          name: `${tool} -F ${chain}, watch paused`,
          script: `${tool} -F ${chain}`,
          drift: [`update-chain ${family} ${chain}`],
        },
        // The flush does open the port: this test could tell.
        () => (openWhileTampered = lab.wanReaches(url)),
      );
      lab.expectReachability([
        [
          `wan -> 2368 over ${family}, watch paused after the flush`,
          true,
          () => openWhileTampered ?? false,
        ],
        [`wan -> 2368 over ${family}, after the repair`, false, () => lab.wanReaches(url)],
        [`host -> 2368 over ${family}, after the repair`, true, () => lab.hostReaches(url)],
      ]);
    },
    30_000,
  );

  test('each repair is counted in the metrics and in status', () => {
    const text = readFileSync(metrics, 'utf8');
    const repairs = Number(/^moat_watch_repairs_total (\d+)$/m.exec(text)?.[1]);
    expect(repairs).toBeGreaterThanOrEqual(TAMPERS.length + 2);
    expect(text).toMatch(/^moat_watch_fighting 0$/m);
    expect(Number(/^moat_watch_last_repair_seconds (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    const status = lab.moat(['status', '-f', lab.policy.file, '--json']);
    const doc = JSON.parse(status.stdout) as { watch: { repairs: number } | null };
    expect(doc.watch?.repairs).toBe(repairs);
    const said = lab.moat(['status', '-f', lab.policy.file]).stdout;
    expect(said).toMatch(
      new RegExp(
        `^Watch: +running \\(pid \\d+\\) since \\S+, ${repairs} repairs?, noticing with`,
        'm',
      ),
    );
    expect(said).toMatch(/^Last repair: +\S+ in \d+ ms: /m);
    expect(said).not.toContain('Fighting:');
  });

  // One target is enough for the fight: the governor does not depend on the layout.
  if (target.release !== '20.10.24' || backend !== 'nft') return;
  test('a program that re-deletes the jump every 100 ms is detected and backed off, not fought forever', async () => {
    const hook = hooks.ipv4;
    const jump = host(`iptables -S ${hook}`)
      .stdout.split('\n')
      .find((l) => l.endsWith('-j MOAT-FORWARD'));
    expect(jump).toBeDefined();
    const spec = (jump ?? '').replace(new RegExp(`^-A ${hook} `), '');
    const stopFile = join(lab.policy.dir, 'stop-fighting');
    const from = running().output.length;
    // `iptables -D` of moat's jump every 100 ms until told to stop (at most 60 s).
    const fighter = hostScript(
      lab.sandbox.host.path,
      `i=0; while [ $i -lt 600 ] && [ ! -e ${stopFile} ]; do ` +
        `iptables -D ${hook} ${spec} 2>/dev/null; sleep 0.1; i=$((i+1)); done`,
    );
    const drift = `add-jump ipv4 ${hook}`;
    try {
      const fight = new RegExp(
        `another program keeps undoing moat's repair \\(5 repairs of ${drift}\\); holding repairs for 5s`,
      );
      expect(await running().waitFor(fight, 50_000, from)).toBe(true);
      const status = lab.moat(['status', '-f', lab.policy.file, '--json']);
      const doc = JSON.parse(status.stdout) as {
        watch: { fight?: { drift: string[]; round: number } };
      };
      expect(doc.watch.fight?.drift).toEqual([drift]);
      expect(lab.moat(['status', '-f', lab.policy.file]).stdout).toMatch(
        new RegExp(
          `^Fighting: +since \\S+, another program keeps undoing: ${drift} \\(round \\d+`,
          'm',
        ),
      );
      expect(readFileSync(metrics, 'utf8')).toMatch(/^moat_watch_fighting 1$/m);
      // The fighter goes on through the hold, and past it.
      await sleep(7000);
    } finally {
      writeFileSync(stopFile, '');
      expect(await fighter).toBe(0);
    }
    // During the 5 s hold, watch did not try to repair; it tried once more after it.
    const lines = running()
      .output.slice(from)
      .split('\n')
      .map((line) => ({ at: Date.parse(line.slice(0, 24)), text: line.slice(25) }));
    const held = lines.find((l) => l.text.includes('holding repairs for 5s'));
    expect(held).toBeDefined();
    const attempts = lines.filter((l) => /^(repaired in|the repair did not hold)/.test(l.text));
    const heldAt = held?.at ?? Number.NaN;
    expect(attempts.filter((l) => l.at > heldAt && l.at < heldAt + 5000)).toEqual([]);
    expect(attempts.some((l) => l.at >= heldAt + 5000)).toBe(true);
    // Every repair put back the jump alone: a repair undone before its verification rolled
    // back only what it had read, never the rest of moat's objects.
    const repaired = lines.flatMap((l) => /^repaired in \d+ ms: (.*)/.exec(l.text)?.[1] ?? []);
    expect(repaired.length).toBeGreaterThan(0);
    expect(new Set(repaired)).toEqual(new Set([drift]));
    // The fighter has stopped: after the hold, watch repairs once more and, a quiet window
    // later, reports the fight over.
    expect(await running().waitFor('the fight is over', 60_000, from)).toBe(true);
    expect(host(`iptables -S ${hook}`).stdout).toContain('-j MOAT-FORWARD');
    expect(readFileSync(metrics, 'utf8')).toMatch(/^moat_watch_fighting 0$/m);
    expect(readFileSync(metrics, 'utf8')).toMatch(/^moat_watch_fights_ended_total 1$/m);
  }, 150_000);
}

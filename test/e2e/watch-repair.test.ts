/**
 * `moat watch` with its default options repairs moat's chains, jumps and sets within seconds of
 * someone changing them, on both iptables backends, with real iptables, ipset and dockerd in a
 * network namespace; and a program that keeps undoing the repair is detected and backed off.
 *
 * The legacy run puts `iptables` → iptables-legacy first on PATH for everything the test starts
 * (dockerd included): a legacy Docker host. The bound asserted here is generous (10 s); the
 * real latency is printed, and `npm run bench` measures it (docs/performance.md).
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DockerSandbox } from '../support/docker-sandbox.js';
import { assertBuilt, cliEnv, CLI, moat, PolicyDir } from '../support/moat-cli.js';
import { describeWith } from '../support/prereq.js';

const POLICY = `version: 1
ipsets:
  office:
    entries: [198.51.100.0/24, 203.0.113.7]
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

/** A directory whose `iptables*` are the legacy ones, to put first on PATH. */
function legacyPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'moat-legacy-bin-'));
  for (const tool of LEGACY_TOOLS) symlinkSync('/usr/sbin/xtables-legacy-multi', join(dir, tool));
  return dir;
}

/** A running `moat watch`, its output collected as it comes. */
class Watch {
  output = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcessWithoutNullStreams;

  constructor(sandbox: DockerSandbox, args: readonly string[]) {
    assertBuilt();
    this.child = spawn(
      'nsenter',
      [`--net=${sandbox.host.path}`, process.execPath, CLI, 'watch', ...args],
      {
        env: {
          ...process.env,
          ...sandbox.env,
          ...cliEnv(),
        },
        stdio: 'pipe',
      },
    );
    this.child.stdout.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.output += d));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        resolve(code);
      }),
    );
  }

  /** Waits (bounded) until the output has `text` after position `from`. */
  async waitFor(text: string | RegExp, timeoutMs: number, from = 0): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const seen = (): boolean => {
      const rest = this.output.slice(from);
      return typeof text === 'string' ? rest.includes(text) : text.test(rest);
    };
    while (!seen() && Date.now() < deadline) await sleep(20);
    return seen();
  }

  async stop(): Promise<number | null | 'timeout'> {
    this.child.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(15_000, 'timeout' as const)]);
    if (code === 'timeout') this.child.kill('SIGKILL');
    return code;
  }
}

/** Runs a shell script in the host namespace without blocking this process's event loop. */
function hostScript(sandbox: DockerSandbox, script: string): Promise<number | null> {
  const child = spawn('nsenter', [`--net=${sandbox.host.path}`, 'sh', '-c', script], {
    stdio: 'ignore',
  });
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      resolve(code);
    }),
  );
}

interface Tamper {
  name: string;
  /** A shell script run in the Docker host's namespace. */
  script: string;
  /** What watch must say had drifted. */
  drift: RegExp;
}

const TAMPERS: Tamper[] = [
  {
    name: 'iptables -F MOAT-FORWARD',
    script: 'iptables -F MOAT-FORWARD',
    drift: /update-chain ipv4 MOAT-FORWARD/,
  },
  {
    name: "deleting moat's jump from DOCKER-USER",
    script: 'iptables -D DOCKER-USER 1',
    drift: /add-jump ipv4 DOCKER-USER/,
  },
  {
    name: 'iptables -F DOCKER-USER (a firewall reload)',
    script: 'iptables -F DOCKER-USER',
    drift: /add-jump ipv4 DOCKER-USER/,
  },
  {
    name: "deleting moat's jump from INPUT",
    script: "iptables -S INPUT | grep -e '-j MOAT-INPUT' | sed 's/^-A/-D/' | xargs iptables",
    drift: /add-jump ipv4 INPUT/,
  },
  {
    name: 'iptables -F MOAT-INGRESS',
    script: 'iptables -F MOAT-INGRESS',
    drift: /update-chain ipv4 MOAT-INGRESS/,
  },
  {
    name: 'ip6tables -F MOAT-INPUT',
    script: 'ip6tables -F MOAT-INPUT',
    drift: /update-chain ipv6 MOAT-INPUT/,
  },
  {
    name: 'ipset flush of a moat set',
    script: 'ipset flush moat-office',
    drift: /update-set moat-office/,
  },
  {
    name: 'ipset destroy of an unused moat set',
    script: 'ipset destroy moat-spare',
    drift: /create-set moat-spare/,
  },
  {
    name: 'ipset destroy of a used moat set, after flushing the chain that uses it',
    script:
      'chain=$(iptables-save -t filter | sed -n "s/^-A \\(MOAT-SRC-[0-9a-f]*\\) .*match-set moat-office.*/\\1/p" | head -1); ' +
      'iptables -F "$chain" && ipset destroy moat-office',
    drift: /create-set moat-office/,
  },
  {
    name: 'a full iptables-restore without moat (a firewall reload that rewrites the table)',
    script: 'iptables-save -t filter | grep -v -e MOAT -e moat | iptables-restore',
    drift: /create-chain ipv4 MOAT-FORWARD/,
  },
];

for (const backend of ['nft', 'legacy'] as const) {
  describeWith(
    ['root', 'dockerd', 'iptables', 'iptables-legacy', 'ipset', 'ip', 'busybox', 'curl'],
    `watch repairs tampering (${backend})`,
    () => {
      let sandbox: DockerSandbox;
      let watch: Watch;
      let savedPath: string | undefined;
      let shim: string | undefined;
      const policy = new PolicyDir();
      const metrics = join(policy.dir, 'moat.prom');
      const latencies: string[] = [];

      const host = (script: string) => sandbox.execInHost('sh', ['-c', script]);
      /** moat's rules and sets as the kernel holds them, in a comparable form. */
      const moatObjects = (): string => {
        const lines: string[] = [];
        for (const save of ['iptables-save', 'ip6tables-save']) {
          const out = host(`${save} -t filter`).stdout;
          lines.push(...out.split('\n').filter((l) => /moat|MOAT/.test(l) && !l.startsWith('#')));
        }
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

      beforeAll(async () => {
        if (backend === 'legacy') {
          shim = legacyPath();
          savedPath = process.env.PATH;
          process.env.PATH = `${shim}:${savedPath ?? ''}`;
        }
        sandbox = await DockerSandbox.start();
        sandbox.runHttpd('ghost', ['2368:2368'], [], 2368);
        policy.write(POLICY);
        watch = new Watch(sandbox, ['-f', policy.file, '--metrics-file', metrics]);
        const ready = await watch.waitFor(/noticing changes with .*ipset/, 30_000);
        if (!ready) throw new Error(`watch did not start:\n${watch.output}`);
      }, 180_000);

      afterAll(async () => {
        const code = await (watch as Watch | undefined)?.stop();
        await (sandbox as DockerSandbox | undefined)?.stop();
        if (savedPath !== undefined) process.env.PATH = savedPath;
        if (shim !== undefined) rmSync(shim, { recursive: true, force: true });
        policy.remove();
        console.log(
          `watch (${backend}) repair latencies:\n${latencies.join('\n')}\n` +
            `--- watch's log ---\n${(watch as Watch | undefined)?.output ?? ''}`,
        );
        expect(code).toBe(0);
      }, 120_000);

      test('watch notices with the backend it should', () => {
        expect(watch.output).toMatch(
          backend === 'nft'
            ? /noticing changes with xtables-monitor and ipset/
            : /noticing changes with legacy probe and ipset/,
        );
        expect(host('iptables -V').stdout).toContain(backend === 'nft' ? 'nf_tables' : 'legacy');
      });

      test.each(TAMPERS)(
        '$name is repaired',
        async ({ script, drift }) => {
          await sleep(500); // the last repair's own changes have settled
          const before = moatObjects();
          expect(before).toContain('-j MOAT-FORWARD');
          const from = watch.output.length;
          const tampered = host(script);
          expect(tampered.stderr).toBe('');
          expect(tampered.status).toBe(0);
          const started = Date.now();
          let restored = false;
          while (!restored && Date.now() - started < REPAIR_BOUND_MS) {
            await sleep(50);
            restored = moatObjects() === before;
          }
          const seen = Date.now() - started;
          expect(restored).toBe(true);
          expect(await watch.waitFor(/repaired in \d+ ms: .*/, 5000, from)).toBe(true);
          const line = /repaired in (\d+) ms: (.*)/.exec(watch.output.slice(from));
          expect(line?.[2]).toMatch(drift);
          latencies.push(
            `  ${script.slice(0, 60)}: watch ${line?.[1] ?? '?'} ms, seen restored after ${seen} ms`,
          );
        },
        30_000,
      );

      test('each repair is counted in the metrics and in status', () => {
        const text = readFileSync(metrics, 'utf8');
        const repairs = Number(/^moat_watch_repairs_total (\d+)$/m.exec(text)?.[1]);
        expect(repairs).toBeGreaterThanOrEqual(TAMPERS.length);
        expect(text).toMatch(/^moat_watch_fighting 0$/m);
        expect(Number(/^moat_watch_last_repair_seconds (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(
          0,
        );
        const status = moat(sandbox, ['status', '-f', policy.file, '--json'], sandbox.env);
        const doc = JSON.parse(status.stdout) as { watch: { repairs: number } | null };
        expect(doc.watch?.repairs).toBe(repairs);
        const said = moat(sandbox, ['status', '-f', policy.file], sandbox.env).stdout;
        expect(said).toMatch(
          new RegExp(
            `^Watch: +running \\(pid \\d+\\) since \\S+, ${repairs} repairs?, noticing with`,
            'm',
          ),
        );
        expect(said).toMatch(/^Last repair: +\S+ in \d+ ms: /m);
        expect(said).not.toContain('Fighting:');
      });

      if (backend === 'nft') {
        test('a program that re-deletes the jump every 100 ms is detected and backed off, not fought forever', async () => {
          const jump = host('iptables -S DOCKER-USER')
            .stdout.split('\n')
            .find((l) => l.includes('-j MOAT-FORWARD'));
          expect(jump).toBeDefined();
          const spec = (jump ?? '').replace(/^-A DOCKER-USER /, '');
          const stopFile = join(policy.dir, 'stop-fighting');
          const from = watch.output.length;
          // `iptables -D` of moat's jump every 100 ms until told to stop (at most 60 s).
          const fighter = hostScript(
            sandbox,
            `i=0; while [ $i -lt 600 ] && [ ! -e ${stopFile} ]; do ` +
              `iptables -D DOCKER-USER ${spec} 2>/dev/null; sleep 0.1; i=$((i+1)); done`,
          );
          try {
            const fight =
              /another program keeps undoing moat's repair \(5 repairs of add-jump ipv4 DOCKER-USER\); holding repairs for 5s/;
            expect(await watch.waitFor(fight, 50_000, from)).toBe(true);
            const status = moat(sandbox, ['status', '-f', policy.file, '--json'], sandbox.env);
            const doc = JSON.parse(status.stdout) as {
              watch: { fight?: { drift: string[]; round: number } };
            };
            expect(doc.watch.fight?.drift).toEqual(['add-jump ipv4 DOCKER-USER']);
            expect(moat(sandbox, ['status', '-f', policy.file], sandbox.env).stdout).toMatch(
              /^Fighting: +since \S+, another program keeps undoing: add-jump ipv4 DOCKER-USER \(round \d+/m,
            );
            expect(readFileSync(metrics, 'utf8')).toMatch(/^moat_watch_fighting 1$/m);
            // The fighter goes on through the hold, and past it.
            await sleep(7000);
          } finally {
            writeFileSync(stopFile, '');
            expect(await fighter).toBe(0);
          }
          // During the 5 s hold, watch did not try to repair; it tried once more after it.
          const lines = watch.output
            .slice(from)
            .split('\n')
            .map((line) => ({ at: Date.parse(line.slice(0, 24)), text: line.slice(25) }));
          const held = lines.find((l) => l.text.includes('holding repairs for 5s'));
          expect(held).toBeDefined();
          const attempts = lines.filter((l) =>
            /^(repaired in|the repair did not hold)/.test(l.text),
          );
          const heldAt = held?.at ?? Number.NaN;
          expect(attempts.filter((l) => l.at > heldAt && l.at < heldAt + 5000)).toEqual([]);
          expect(attempts.some((l) => l.at >= heldAt + 5000)).toBe(true);
          // The fighter has stopped: after the hold, watch repairs once more and, a quiet
          // window later, reports the fight over.
          expect(await watch.waitFor('the fight is over', 60_000, from)).toBe(true);
          expect(host('iptables -S DOCKER-USER').stdout).toContain('-j MOAT-FORWARD');
          expect(readFileSync(metrics, 'utf8')).toMatch(/^moat_watch_fighting 0$/m);
          expect(readFileSync(metrics, 'utf8')).toMatch(/^moat_watch_fights_ended_total 1$/m);
        }, 150_000);
      }
    },
  );
}

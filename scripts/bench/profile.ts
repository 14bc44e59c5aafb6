/**
 * Where moat's time goes on a big host: a timeline of the programs it runs (through logging
 * shims put first on its PATH) and a CPU profile of its own process (node --cpu-prof), summarised
 * by module and by function. `npm run bench -- --profile DIR`.
 */
import { chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { FakeDockerApi } from './docker-api.js';
import { formatTable } from './report.js';
import { ROOT, openBenchHost, tool, type Backend, type Modules } from './scenario.js';

/** The programs moat runs; each gets a shim that logs start, end and arguments. */
const SHIMMED = [
  'iptables',
  'iptables-nft',
  'ip6tables-nft',
  'iptables-legacy',
  'ip6tables-legacy',
  'iptables-nft-save',
  'iptables-nft-restore',
  'ip6tables-nft-save',
  'ip6tables-nft-restore',
  'iptables-legacy-save',
  'iptables-legacy-restore',
  'ip6tables-legacy-save',
  'ip6tables-legacy-restore',
  'ipset',
  'nft',
  'ss',
  'sysctl',
  'ps',
  'cat',
  'git',
];

function makeShims(dir: string, log: string): void {
  mkdirSync(dir, { recursive: true });
  for (const name of SHIMMED) {
    let real: string;
    try {
      real = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      continue; // not installed: moat will see it missing, as it would without the shim
    }
    const script = [
      '#!/bin/sh',
      's=$(date +%s%N)',
      `${real} "$@"`,
      'rc=$?',
      'e=$(date +%s%N)',
      `printf '%s %s %s %s\\n' "$s" "$e" "${name}" "$*" >> ${log}`,
      'exit $rc',
      '',
    ].join('\n');
    writeFileSync(join(dir, name), script);
    chmodSync(join(dir, name), 0o755);
  }
}

interface Call {
  readonly startMs: number;
  readonly ms: number;
  readonly command: string;
}

function readCalls(log: string, startedNs: bigint): Call[] {
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [s, e, ...rest] = line.split(' ');
      const start = BigInt(s ?? '0');
      const end = BigInt(e ?? '0');
      return {
        startMs: Number(start - startedNs) / 1e6,
        ms: Number(end - start) / 1e6,
        command: rest.join(' ').slice(0, 90),
      };
    })
    .sort((a, b) => a.startMs - b.startMs);
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** What a script URL belongs to: a moat module, an npm package, node's own code. */
function category(url: string, fn: string): string {
  if (url === '')
    return fn === '(garbage collector)'
      ? 'garbage collection'
      : fn === '(idle)'
        ? 'idle (waiting for programs, I/O)'
        : fn;
  if (url.startsWith('node:internal/modules') || url.includes('internal/modules/'))
    return 'node: loading modules';
  if (url.startsWith('node:')) return 'node: other built-ins';
  const npm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (npm !== null) return `npm: ${npm[1] ?? '?'}`;
  const own = /\/dist\/(.*)\.js$/.exec(url);
  if (own !== null) return `moat: ${own[1] ?? '?'}`;
  return url;
}

function summarise(profile: CpuProfile): {
  totalMs: number;
  byCategory: [string, number][];
  byFunction: [string, number][];
} {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (node === undefined) return;
    const { functionName, url, lineNumber } = node.callFrame;
    const cat = category(url, functionName);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + us);
    const where = url === '' ? '' : ` ${url.replace(`file://${ROOT}/`, '')}:${lineNumber + 1}`;
    const fn = `${functionName === '' ? '(anonymous)' : functionName}${where}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  });
  const sorted = (m: Map<string, number>): [string, number][] =>
    [...m.entries()].map(([k, v]): [string, number] => [k, v / 1000]).sort((a, b) => b[1] - a[1]);
  return {
    totalMs: (profile.endTime - profile.startTime) / 1000,
    byCategory: sorted(byCategory),
    byFunction: sorted(byFunction),
  };
}

function newestProfile(dir: string): CpuProfile | undefined {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort();
  const last = files[files.length - 1];
  return last === undefined
    ? undefined
    : (JSON.parse(readFileSync(join(dir, last), 'utf8')) as CpuProfile);
}

/**
 * Profiles `moat plan` (no changes), `moat plan --backend auto` and `moat apply` of a one-container
 * change on a host with `foreign` rules, for each backend and policy size (groups). Prints the
 * summaries; leaves the .cpuprofile files in `outDir` (open them in Chrome DevTools).
 */
export async function profileHost(
  outDir: string,
  backends: readonly Backend[],
  foreign: number,
  sizes: readonly number[],
  api: FakeDockerApi,
  modules: Modules,
): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  for (const backend of backends)
    for (const containers of sizes) {
      const bench = await openBenchHost(backend, foreign, containers, api, modules);
      try {
        const s = bench.scenario;
        await s.moatChecked([
          'apply',
          '-f',
          bench.policy,
          '--auto-approve',
          '--quiet',
          '--backend',
          backend,
        ]);
        const back = await s.restoreInput(bench.policy);
        const runs: { label: string; args: string[]; after?: () => Promise<unknown> }[] = [
          { label: 'plan', args: ['plan', '-f', bench.policy, '--backend', backend] },
          { label: 'plan-auto', args: ['plan', '-f', bench.policy] },
          {
            label: 'apply-change',
            args: ['apply', '-f', bench.changed, '--auto-approve', '--quiet', '--backend', backend],
            after: () => s.rawRestore(back),
          },
        ];
        for (const run of runs) {
          const label = `${backend}-${foreign}-${containers}-${run.label}`;
          const profDir = join(outDir, label);
          rmSync(profDir, { recursive: true, force: true });
          mkdirSync(profDir, { recursive: true });
          const shimDir = join(bench.dir, 'shims');
          const log = join(bench.dir, `calls-${run.label}.log`);
          makeShims(shimDir, log);
          const started = BigInt(Date.now()) * 1_000_000n;
          const result = await s.moat(run.args, {
            nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
            env: { PATH: `${shimDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` },
          });
          if (result.exitCode !== 0)
            throw new Error(
              `moat ${run.args.join(' ')} exited ${result.exitCode}: ${result.stderr}`,
            );
          if (run.after !== undefined) await run.after();
          const calls = readCalls(log, started);
          const profile = newestProfile(profDir);
          console.log(
            `\n### ${label}: ${result.seconds.toFixed(3)} s wall, peak ${result.peakMiB?.toFixed(0) ?? '?'} MiB\n`,
          );
          const programMs = calls.reduce((sum, c) => sum + c.ms, 0);
          console.log(
            `Programs moat ran (${calls.length}, ${programMs.toFixed(0)} ms in total):\n`,
          );
          console.log(
            formatTable(
              ['at ms', 'took ms', 'program'],
              calls.map((c) => [c.startMs.toFixed(0), c.ms.toFixed(1), c.command]),
            ),
          );
          if (profile !== undefined) {
            const sum = summarise(profile);
            console.log(
              `\nmoat's own process (${sum.totalMs.toFixed(0)} ms profiled), self time by module:\n`,
            );
            console.log(
              formatTable(
                ['module', 'ms', 'share'],
                sum.byCategory
                  .slice(0, 14)
                  .map(([k, v]) => [k, v.toFixed(0), `${((100 * v) / sum.totalMs).toFixed(0)}%`]),
              ),
            );
            console.log('\nTop functions by self time:\n');
            console.log(
              formatTable(
                ['function', 'ms'],
                sum.byFunction.slice(0, 15).map(([k, v]) => [k, v.toFixed(1)]),
              ),
            );
          }
        }
        // What one read of the same host costs with the raw tools, for scale.
        const save = await s.rawRead();
        const filter = await s.rawRead('filter');
        console.log(
          `\nraw, same host: ${tool(backend, 'ipv4', 'save')} ${(save.save4 * 1000).toFixed(0)} ms; ` +
            `both families + ipset save ${(save.total * 1000).toFixed(0)} ms (-t filter only: ${(filter.total * 1000).toFixed(0)} ms)`,
        );
      } finally {
        bench.close();
      }
    }
}

/**
 * One benchmark host: a namespace holding Docker's rules and the foreign rules, moat's CLI run
 * inside it, and the raw iptables tools doing the same work.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { FakeDockerApi } from './docker-api.js';
import { hostRuleset, makeInventory, type BenchInventory, type HostRuleset } from './host.js';
import { BenchNs, timedChecked, type Timed } from './netns.js';
import { policyYaml } from './policy.js';
import { median } from './report.js';
import type * as CompileModule from '../../src/compile/compile.js';
import type * as HostFactsModule from '../../src/compile/host-facts.js';
import type * as DiffModule from '../../src/plan/diff.js';
import type * as ParseModule from '../../src/policy/parse.js';
import type * as ParseSaveModule from '../../src/netfilter/parse-save.js';
import type * as ParseIpsetModule from '../../src/netfilter/parse-ipset.js';
import type * as NormalizeModule from '../../src/docker/normalize.js';
import type * as RenderRestoreModule from '../../src/apply/render-restore.js';
import type * as RenderJsonModule from '../../src/plan/render-json.js';

export type Backend = 'nft' | 'legacy';

/** The project root: the nearest folder above this script whose package.json is moat's. */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'moat') return dir;
    } catch {
      // no package.json here: keep climbing
    }
    const parent = resolve(dir, '..');
    if (parent === dir) throw new Error('cannot find the moat project root above the benchmark');
    dir = parent;
  }
}

export const ROOT = findRoot();
export const DIST = join(ROOT, 'dist');
/** bin/moat: the bundled CLI users run. */
export const CLI = join(ROOT, 'bin', 'moat');

/** The dist modules measured in-process, typed from their sources. */
export interface Modules {
  compile: typeof CompileModule;
  hostFacts: typeof HostFactsModule;
  diff: typeof DiffModule;
  parse: typeof ParseModule;
  parseSave: typeof ParseSaveModule;
  parseIpset: typeof ParseIpsetModule;
  normalize: typeof NormalizeModule;
  renderRestore: typeof RenderRestoreModule;
  renderJson: typeof RenderJsonModule;
}

export async function loadModules(): Promise<Modules> {
  const load = async <T>(path: string): Promise<T> =>
    (await import(pathToFileURL(join(DIST, path)).href)) as T;
  return {
    compile: await load('compile/compile.js'),
    hostFacts: await load('compile/host-facts.js'),
    diff: await load('plan/diff.js'),
    parse: await load('policy/parse.js'),
    parseSave: await load('netfilter/parse-save.js'),
    parseIpset: await load('netfilter/parse-ipset.js'),
    normalize: await load('docker/normalize.js'),
    renderRestore: await load('apply/render-restore.js'),
    renderJson: await load('plan/render-json.js'),
  };
}

export const tool = (backend: Backend, family: 'ipv4' | 'ipv6', what: 'save' | 'restore'): string =>
  `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-${what}`;

/** Restore input moat would write for a plan, rendered by moat's own renderer. */
export interface RestoreInput {
  readonly ipv4?: string;
  readonly ipv6?: string;
  readonly ipsetBefore?: string;
  readonly ipsetAfter?: string;
}

export function inputBytes(input: RestoreInput): number {
  return [input.ipv4, input.ipv6, input.ipsetBefore, input.ipsetAfter].reduce(
    (sum, text) => sum + Buffer.byteLength(text ?? ''),
    0,
  );
}

export function inputRules(input: RestoreInput): number {
  return [input.ipv4, input.ipv6]
    .join('\n')
    .split('\n')
    .filter((l) => /^-[AI] /.test(l)).length;
}

export class Scenario {
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly ns: BenchNs,
    private readonly backend: Backend,
    private readonly dir: string,
    socketPath: string,
    private readonly modules: Modules,
  ) {
    this.env = {
      DOCKER_HOST: `unix://${socketPath}`,
      MOAT_LOCK_FILE: join(dir, 'moat.lock'),
      MOAT_HISTORY_DIR: join(dir, 'state'),
      NO_COLOR: '1',
    };
  }

  moat(
    args: readonly string[],
    extra: { nodeArgs?: readonly string[]; env?: NodeJS.ProcessEnv } = {},
  ): Promise<Timed> {
    return this.ns.run(process.execPath, [...(extra.nodeArgs ?? []), CLI, ...args], {
      env: { ...this.env, ...extra.env },
      cwd: this.dir,
    });
  }

  async moatChecked(args: readonly string[], okCodes: readonly number[] = [0]): Promise<Timed> {
    const result = await this.moat(args);
    if (!okCodes.includes(result.exitCode))
      throw new Error(
        `moat ${args.join(' ')} exited ${result.exitCode}: ${result.stderr.trim().slice(0, 3000)}`,
      );
    return result;
  }

  /** Restore input of the plan that brings the host to `policy`, via moat plan --json. */
  async restoreInput(policy: string): Promise<RestoreInput> {
    const result = await this.moatChecked([
      'plan',
      '-f',
      policy,
      '--json',
      '--backend',
      this.backend,
    ]);
    const { plan } = this.modules.renderJson.planFromDocument(result.stdout, 'plan');
    const scripts = this.modules.renderRestore.renderRestore(plan);
    return {
      ...(scripts.families.ipv4 === undefined ? {} : { ipv4: scripts.families.ipv4 }),
      ...(scripts.families.ipv6 === undefined ? {} : { ipv6: scripts.families.ipv6 }),
      ...(scripts.ipsetBefore === undefined ? {} : { ipsetBefore: scripts.ipsetBefore }),
      ...(scripts.ipsetAfter === undefined ? {} : { ipsetAfter: scripts.ipsetAfter }),
    };
  }

  /** The raw tools writing `input`, in the order moat writes it; total seconds. */
  async rawRestore(input: RestoreInput): Promise<number> {
    let total = 0;
    if (input.ipsetBefore !== undefined)
      total += (await this.ns.checked('ipset', ['restore'], { input: input.ipsetBefore })).seconds;
    for (const family of ['ipv4', 'ipv6'] as const) {
      const text = input[family];
      if (text === undefined) continue;
      total += (
        await this.ns.checked(tool(this.backend, family, 'restore'), ['--noflush', '-w', '5'], {
          input: text,
        })
      ).seconds;
    }
    if (input.ipsetAfter !== undefined)
      total += (await this.ns.checked('ipset', ['restore'], { input: input.ipsetAfter })).seconds;
    return total;
  }

  /** Everything a full read of the host costs with the raw tools. */
  async rawRead(tables?: 'filter'): Promise<{
    save4: number;
    total: number;
    save4Text: string;
    save6Text: string;
    ipsetText: string;
  }> {
    const args = tables === undefined ? [] : ['-t', tables];
    const save4 = await this.ns.checked(tool(this.backend, 'ipv4', 'save'), args);
    const save6 = await this.ns.checked(tool(this.backend, 'ipv6', 'save'), args);
    const sets = await this.ns.checked('ipset', ['save']);
    return {
      save4: save4.seconds,
      total: save4.seconds + save6.seconds + sets.seconds,
      save4Text: save4.stdout,
      save6Text: save6.stdout,
      ipsetText: sets.stdout,
    };
  }

  /** Removes every moat object (chains, jumps, sets) with the raw tools: back to a clean host. */
  async reset(): Promise<void> {
    for (const family of ['ipv4', 'ipv6'] as const) {
      const save = (await this.ns.checked(tool(this.backend, family, 'save'), ['-t', 'filter']))
        .stdout;
      const declare: string[] = [];
      const remove: string[] = [];
      const drop: string[] = [];
      for (const line of save.split('\n')) {
        const chain = /^:(MOAT-\S+) /.exec(line)?.[1];
        if (chain !== undefined) {
          declare.push(`:${chain} - [0:0]`);
          drop.push(`-X ${chain}`);
          continue;
        }
        const rule = /^-A (\S+) (.*)$/.exec(line);
        if (rule !== null && !rule[1]!.startsWith('MOAT-') && /moat:|-j MOAT-/.test(rule[2]!))
          remove.push(`-D ${rule[1]!} ${rule[2]!}`);
      }
      if (declare.length + remove.length === 0) continue;
      const script = ['*filter', ...declare, ...remove, ...drop, 'COMMIT', ''].join('\n');
      await this.ns.checked(tool(this.backend, family, 'restore'), ['--noflush', '-w', '5'], {
        input: script,
      });
    }
    const sets = (await this.ns.checked('ipset', ['list', '-n'])).stdout.split('\n');
    for (const set of sets.filter((s) => s.startsWith('moat-')))
      await this.ns.checked('ipset', ['destroy', set]);
  }

  /** One `iptables -A` per rule, as per-command tools do: the median cost of one call. */
  async perRuleCall(input: RestoreInput, calls: number): Promise<number | undefined> {
    const lines = (input.ipv4 ?? '').split('\n').filter((l) => l.startsWith('-A MOAT-FORWARD '));
    if (lines.length === 0 || calls === 0) return undefined;
    const chain = 'BENCH-PERRULE';
    const cmd = `iptables-${this.backend}`;
    await this.ns.checked(cmd, ['-w', '-N', chain]);
    const times: number[] = [];
    try {
      for (let i = 0; i < calls; i++) {
        const line = lines[i % lines.length]!.replace(/^-A MOAT-FORWARD /, '').replace(
          /-j MOAT-\S+/,
          '-j RETURN',
        );
        times.push((await this.ns.checked(cmd, ['-w', '-A', chain, ...splitArgs(line)])).seconds);
      }
    } finally {
      await this.ns.checked(cmd, ['-w', '-F', chain]);
      await this.ns.checked(cmd, ['-w', '-X', chain]);
    }
    return median(times);
  }
}

/** Splits a rule spec as a shell would (double quotes only, as iptables-save writes them). */
export function splitArgs(spec: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(spec); m !== null; m = re.exec(spec)) out.push(m[1] ?? m[2] ?? '');
  return out;
}

/** A benchmark host, ready: the namespace loaded, the policies written, the API serving. */
export interface BenchHost {
  readonly scenario: Scenario;
  readonly ns: BenchNs;
  readonly dir: string;
  readonly inventory: BenchInventory;
  readonly rules: HostRuleset;
  /** The policy, and the same with one container's rules changed. */
  readonly policy: string;
  readonly changed: string;
  close(): void;
}

export async function openBenchHost(
  backend: Backend,
  foreign: number,
  containers: number,
  api: FakeDockerApi,
  modules: Modules,
): Promise<BenchHost> {
  const dir = mkdtempSync(join(tmpdir(), 'moat-bench-'));
  const inventory = makeInventory(containers);
  api.serve(inventory);
  const policy = join(dir, 'firewall.yaml');
  const changed = join(dir, 'changed.yaml');
  writeFileSync(policy, policyYaml(inventory));
  writeFileSync(changed, policyYaml(inventory, true));
  const rules = hostRuleset(inventory, foreign);
  const ns = BenchNs.create(backend.slice(0, 3));
  const close = (): void => {
    ns.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Docker's rules for the inventory and the foreign rules: one full restore per family.
    for (const family of ['ipv4', 'ipv6'] as const)
      await timedChecked(tool(backend, family, 'restore'), ['-w', '5'], {
        ns: ns.name,
        input: rules[family],
      });
  } catch (error) {
    close();
    throw error;
  }
  return {
    scenario: new Scenario(ns, backend, dir, api.socketPath, modules),
    ns,
    dir,
    inventory,
    rules,
    policy,
    changed,
    close,
  };
}

/**
 * `npm run bench`: how long moat takes against the raw iptables tools, on hosts with 0 to 50,000
 * foreign rules, on both iptables backends, for policies of 10 to 1,000 container groups.
 * A script that prints figures (docs/performance.md explains them), not a test.
 *
 * Every host is a throwaway network namespace; the Docker inventory comes from a fake Engine API
 * on a unix socket. moat is the built, bundled CLI (bin/moat), spawned inside the namespace.
 *
 *   npm run bench -- [--quick] [--runs N] [--backend nft,legacy]
 *        [--rules 0,1000,10000,50000] [--containers 10,100,1000] [--json FILE] [--no-auto]
 *        [--profile DIR]   (profile moat on the largest host instead, for each policy size;
 *                          CPU profiles go to DIR)
 *        [--watch-rules 1000,50000] [--watch-idle SECONDS] [--watch-repeats N]
 *        [--no-watch | --watch-only]   (`moat watch`: idle CPU and repair latency after each
 *                          kind of tampering, on hosts of these sizes; scripts/bench/watch.ts)
 *        [--exposure-targets 20.10.24,28.5.2,29.7.2-nftables] [--no-exposure | --exposure-only]
 *                          (the exposure window after `docker run`, with real packets on real
 *                          daemons of these Docker releases; scripts/bench/exposure.ts)
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeDockerApi } from './bench/docker-api.js';
import { containersAnswer, makeInventory, networksAnswer } from './bench/host.js';
import { destroyAll, timedChecked, timedRun } from './bench/netns.js';
import { profileHost } from './bench/profile.js';
import { MEASURED, watchScenario, type WatchRow } from './bench/watch.js';
import { EXPOSURE_TARGETS, exposureScenario, type ExposureRow } from './bench/exposure.js';
import { TARGETS, type TargetName } from '../test/support/docker-releases.js';
import { median, formatTable, seconds, ratio, mib, kib } from './bench/report.js';
import {
  CLI,
  inputBytes,
  inputRules,
  loadModules,
  openBenchHost,
  tool,
  type Backend,
  type Modules,
} from './bench/scenario.js';
import type { LiveNetfilter, LiveRuleset } from '../src/netfilter/model.js';

interface Options {
  runs: number;
  backends: Backend[];
  rules: number[];
  containers: number[];
  json?: string;
  perRuleCalls: number;
  /** Measure `--backend auto` (moat's default) besides the explicit backend. */
  auto: boolean;
  /** Profile instead of measuring: write CPU profiles here and print where the time goes. */
  profile?: string;
  /** moat watch: host sizes, idle window, repeats of each tampering; [] skips it. */
  watchRules: number[];
  watchIdleSeconds: number;
  watchRepeats: number;
  /** Only the watch measurements. */
  watchOnly: boolean;
  /** Docker targets of the exposure measurements; [] skips them. */
  exposureTargets: TargetName[];
  /** Only the exposure measurements. */
  exposureOnly: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = {
    runs: 3,
    backends: ['nft', 'legacy'],
    rules: [0, 1000, 10000, 50000],
    containers: [10, 100, 1000],
    perRuleCalls: 20,
    auto: true,
    watchRules: [1000, 50000],
    watchIdleSeconds: 60,
    watchRepeats: 3,
    watchOnly: false,
    exposureTargets: [...EXPOSURE_TARGETS],
    exposureOnly: false,
  };
  const list = (value: string | undefined): string[] =>
    (value ?? '').split(',').filter((s) => s !== '');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string | undefined => argv[++i];
    switch (arg) {
      case '--quick':
        // one run each, the policy sizes at the ends, still every host size and backend
        options.runs = 1;
        options.containers = [10, 1000];
        options.perRuleCalls = 5;
        options.watchIdleSeconds = 15;
        options.watchRepeats = 1;
        break;
      case '--watch-rules':
        options.watchRules = list(value()).map(Number);
        break;
      case '--watch-idle':
        options.watchIdleSeconds = Math.max(1, Number(value()));
        break;
      case '--watch-repeats':
        options.watchRepeats = Math.max(1, Number(value()));
        break;
      case '--no-watch':
        options.watchRules = [];
        break;
      case '--watch-only':
        options.watchOnly = true;
        break;
      case '--exposure-targets':
        options.exposureTargets = list(value()).map((name) => {
          if (!(name in TARGETS)) throw new Error(`unknown Docker target ${name}`);
          return name as TargetName;
        });
        break;
      case '--no-exposure':
        options.exposureTargets = [];
        break;
      case '--exposure-only':
        options.exposureOnly = true;
        break;
      case '--runs':
        options.runs = Math.max(1, Number(value()));
        break;
      case '--backend':
        options.backends = list(value()).filter((b): b is Backend => b === 'nft' || b === 'legacy');
        break;
      case '--rules':
        options.rules = list(value()).map(Number);
        break;
      case '--containers':
        options.containers = list(value()).map(Number);
        break;
      case '--json': {
        const file = value();
        if (file !== undefined) options.json = file;
        break;
      }
      case '--profile': {
        const dir = value();
        if (dir !== undefined) options.profile = resolve(dir);
        break;
      }
      case '--no-auto':
        options.auto = false;
        break;
      case '--help':
        console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${arg ?? ''}`);
    }
  }
  return options;
}

/** One scenario's figures; seconds are medians. */
interface Row {
  backend: Backend;
  foreign: number;
  containers: number;
  hostRules: number;
  moatRules: number;
  rawSave4: number;
  rawRead: number;
  rawReadFilter: number;
  planAuto?: number;
  plan: number;
  validate: number;
  planPeakMiB?: number;
  applyFresh: number;
  applyFreshAuto?: number;
  rawFreshRestore: number;
  freshBytes: number;
  freshRules: number;
  applyChange: number;
  rawChangeRestore: number;
  changeBytes: number;
  changeRules: number;
  applyPeakMiB?: number;
  perRuleCall?: number;
}

async function times(runs: number, step: () => Promise<number>): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(await step());
  return median(out);
}

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

interface InProcess {
  containers: number;
  foreign: number;
  backend: Backend;
  /** First (cold) calls, as the CLI makes them once per run. */
  firstPolicyParse: number;
  firstCompileDiff: number;
  policyParse: number;
  saveParse: number;
  compile: number;
  diff: number;
  compileDiffFresh: number;
}

/** compile + diff of the policy against a live host, in this process, from the built modules. */
function measureInProcess(
  modules: Modules,
  policyText: string,
  inventoryJson: { containers: unknown; networks: unknown },
  saves: { ipv4: string; ipv6: string; ipsets: string; backend: Backend },
  freshSaves: { ipv4: string; ipv6: string; ipsets: string },
  runs: number,
): Omit<InProcess, 'containers' | 'foreign' | 'backend'> {
  const clock = (): number => performance.now() / 1000;
  // The first call runs cold (not yet optimised by the JIT), as it does in the one-shot CLI.
  const measure = <T>(f: () => T): { value: T; seconds: number; first: number } => {
    const samples: number[] = [];
    let value: T | undefined;
    for (let i = 0; i < runs; i++) {
      const t0 = clock();
      value = f();
      samples.push(clock() - t0);
    }
    return { value: value as T, seconds: median(samples), first: samples[0] ?? Number.NaN };
  };
  const parsed = measure(() => modules.parse.parsePolicy(policyText, 'firewall.yaml'));
  const policy = parsed.value.policy;
  if (policy === undefined)
    throw new Error(
      `the generated policy is invalid: ${JSON.stringify(parsed.value.diagnostics.slice(0, 3))}`,
    );
  const inventory = modules.normalize.inventoryFromApi(
    inventoryJson.containers,
    inventoryJson.networks,
  );
  const toLive = (s: { ipv4: string; ipv6: string; ipsets: string }): LiveNetfilter => {
    const ruleset = (text: string, family: 'ipv4' | 'ipv6'): LiveRuleset =>
      modules.parseSave.parseSave(text, family);
    return {
      backend: saves.backend,
      rulesets: { ipv4: ruleset(s.ipv4, 'ipv4'), ipv6: ruleset(s.ipv6, 'ipv6') },
      ipsets: modules.parseIpset.parseIpsetSave(s.ipsets),
    };
  };
  const liveParse = measure(() => toLive(saves));
  const live = liveParse.value;
  const fresh = toLive(freshSaves);
  const facts = modules.hostFacts.hostFacts(live);
  const compiled = measure(() => modules.compile.compile(policy, inventory, facts));
  const diffed = measure(() => modules.diff.diff(compiled.value, live));
  if (diffed.value.steps.length !== 0)
    throw new Error(
      `in-process plan against the applied host is not empty (${diffed.value.steps.length} steps)`,
    );
  const both = measure(() =>
    modules.diff.diff(modules.compile.compile(policy, inventory, facts), fresh),
  );
  return {
    firstPolicyParse: parsed.first,
    firstCompileDiff: compiled.first + diffed.first,
    policyParse: parsed.seconds,
    saveParse: liveParse.seconds,
    compile: compiled.seconds,
    diff: diffed.seconds,
    compileDiffFresh: both.seconds,
  };
}

async function scenario(
  options: Options,
  modules: Modules,
  api: FakeDockerApi,
  backend: Backend,
  foreign: number,
  containers: number,
  inProcess: InProcess[],
): Promise<Row> {
  const bench = await openBenchHost(backend, foreign, containers, api, modules);
  const { inventory, policy, changed } = bench;
  const host = bench.rules;
  try {
    const s = bench.scenario;
    const runs = options.runs;
    const explicit = ['--backend', backend];

    // What moat will write on this untouched host, and what the host holds before.
    const fresh = await s.restoreInput(policy);
    const freshRaw = await s.rawRead();

    // Apply a fresh policy, and the raw tools writing the same input; ends applied.
    const applyFresh: number[] = [];
    const rawFresh: number[] = [];
    const peaks: number[] = [];
    for (let i = 0; i < runs; i++) {
      rawFresh.push(await s.rawRestore(fresh));
      await s.reset();
      const r = await s.moatChecked([
        'apply',
        '-f',
        policy,
        '--auto-approve',
        '--quiet',
        ...explicit,
      ]);
      applyFresh.push(r.seconds);
      if (r.peakMiB !== undefined) peaks.push(r.peakMiB);
      if (i < runs - 1) await s.reset();
    }
    let applyFreshAuto: number | undefined;
    if (options.auto) {
      await s.reset();
      applyFreshAuto = (await s.moatChecked(['apply', '-f', policy, '--auto-approve', '--quiet']))
        .seconds;
    }

    // The policy alone: loading, parsing and validating it (no host read).
    const validate = await times(
      runs,
      async () => (await s.moatChecked(['validate', '-f', policy])).seconds,
    );

    // The applied host: plan is a no-op (what cron runs); the raw reads of the same host.
    const noop = await s.moatChecked(['plan', '-f', policy, '--detailed-exitcode', ...explicit]);
    if (!noop.stdout.includes('No changes'))
      throw new Error(`plan after apply is not empty:\n${noop.stdout.slice(0, 2000)}`);
    const planPeaks: number[] = [];
    const plan = await times(runs, async () => {
      const r = await s.moatChecked(['plan', '-f', policy, ...explicit]);
      if (r.peakMiB !== undefined) planPeaks.push(r.peakMiB);
      return r.seconds;
    });
    const planAuto = options.auto
      ? await times(runs, async () => (await s.moatChecked(['plan', '-f', policy])).seconds)
      : undefined;
    const reads: number[] = [];
    const save4s: number[] = [];
    const filterReads: number[] = [];
    let applied = await s.rawRead();
    for (let i = 0; i < runs; i++) {
      applied = await s.rawRead();
      reads.push(applied.total);
      save4s.push(applied.save4);
      filterReads.push((await s.rawRead('filter')).total);
    }
    const moatRules = (applied.save4Text + applied.save6Text)
      .split('\n')
      .filter((l) => /^-A .*moat:/.test(l)).length;

    // One container's rules change: moat apply, and the raw tools writing the same change.
    const change = await s.restoreInput(changed);
    await s.moatChecked(['apply', '-f', changed, '--auto-approve', '--quiet', ...explicit]);
    const back = await s.restoreInput(policy);
    await s.rawRestore(back);
    const applyChange: number[] = [];
    const rawChange: number[] = [];
    for (let i = 0; i < runs; i++) {
      rawChange.push(await s.rawRestore(change));
      await s.rawRestore(back);
      const r = await s.moatChecked([
        'apply',
        '-f',
        changed,
        '--auto-approve',
        '--quiet',
        ...explicit,
      ]);
      applyChange.push(r.seconds);
      if (r.peakMiB !== undefined) peaks.push(r.peakMiB);
      await s.rawRestore(back);
    }
    const verify = await s.moatChecked(['plan', '-f', policy, '--detailed-exitcode', ...explicit]);
    if (!verify.stdout.includes('No changes'))
      throw new Error('the raw change and its reverse did not leave the host as moat applied it');

    if (containers === Math.max(...options.containers) && foreign === Math.max(...options.rules)) {
      const measured = measureInProcess(
        modules,
        readFileSync(policy, 'utf8'),
        { containers: containersAnswer(inventory), networks: networksAnswer(inventory) },
        { ipv4: applied.save4Text, ipv6: applied.save6Text, ipsets: applied.ipsetText, backend },
        { ipv4: freshRaw.save4Text, ipv6: freshRaw.save6Text, ipsets: freshRaw.ipsetText },
        Math.max(5, runs * 3),
      );
      inProcess.push({ containers, foreign, backend, ...measured });
    }

    const perRuleCall =
      containers === Math.min(...options.containers)
        ? await s.perRuleCall(fresh, options.perRuleCalls)
        : undefined;

    const planPeak = planPeaks.length === 0 ? undefined : Math.max(...planPeaks);
    const applyPeak = peaks.length === 0 ? undefined : Math.max(...peaks);
    return {
      backend,
      foreign,
      containers,
      hostRules: host.ruleCount.ipv4 + host.ruleCount.ipv6,
      moatRules,
      rawSave4: median(save4s),
      rawRead: median(reads),
      rawReadFilter: median(filterReads),
      ...(planAuto === undefined ? {} : { planAuto }),
      plan,
      validate,
      ...(planPeak === undefined ? {} : { planPeakMiB: planPeak }),
      applyFresh: median(applyFresh),
      ...(applyFreshAuto === undefined ? {} : { applyFreshAuto }),
      rawFreshRestore: median(rawFresh),
      freshBytes: inputBytes(fresh),
      freshRules: inputRules(fresh),
      applyChange: median(applyChange),
      rawChangeRestore: median(rawChange),
      changeBytes: inputBytes(change),
      changeRules: inputRules(change),
      ...(applyPeak === undefined ? {} : { applyPeakMiB: applyPeak }),
      ...(perRuleCall === undefined ? {} : { perRuleCall }),
    };
  } finally {
    bench.close();
  }
}

function report(
  rows: readonly Row[],
  inProcess: readonly InProcess[],
  startup: { node: number; moat: number },
): void {
  console.log('\n## moat against the raw tools (medians, seconds)\n');
  console.log(
    formatTable(
      [
        'backend',
        'foreign',
        'groups',
        'host rules',
        'moat rules',
        'iptables-save',
        'raw read',
        'validate',
        'plan',
        '÷save',
        'plan auto',
        '÷save',
        'plan peak',
      ],
      rows.map((r) => [
        r.backend,
        String(r.foreign),
        String(r.containers),
        String(r.hostRules),
        String(r.moatRules),
        seconds(r.rawSave4),
        seconds(r.rawRead),
        seconds(r.validate),
        seconds(r.plan),
        ratio(r.plan, r.rawSave4),
        r.planAuto === undefined ? '-' : seconds(r.planAuto),
        r.planAuto === undefined ? '-' : ratio(r.planAuto, r.rawSave4),
        mib(r.planPeakMiB),
      ]),
    ),
  );
  console.log('\n## apply (medians, seconds; raw = raw read + restore of the same input)\n');
  console.log(
    formatTable(
      [
        'backend',
        'foreign',
        'groups',
        'fresh input',
        'raw fresh',
        'apply fresh',
        '÷raw',
        'auto',
        'change input',
        'raw change',
        'apply change',
        '÷raw',
        'peak',
      ],
      rows.map((r) => {
        const rawFresh = r.rawRead + r.rawFreshRestore;
        const rawChange = r.rawRead + r.rawChangeRestore;
        return [
          r.backend,
          String(r.foreign),
          String(r.containers),
          kib(r.freshBytes),
          seconds(rawFresh),
          seconds(r.applyFresh),
          ratio(r.applyFresh, rawFresh),
          r.applyFreshAuto === undefined ? '-' : seconds(r.applyFreshAuto),
          `${kib(r.changeBytes)} (${r.changeRules} rules)`,
          seconds(rawChange),
          seconds(r.applyChange),
          ratio(r.applyChange, rawChange),
          mib(r.applyPeakMiB),
        ];
      }),
    ),
  );
  const perRule = rows.filter((r) => r.perRuleCall !== undefined);
  if (perRule.length > 0) {
    console.log(
      '\n## one `iptables -A` call per rule, as per-command tools work (median of single calls)\n',
    );
    console.log(
      formatTable(
        [
          'backend',
          'foreign',
          'per call',
          '1,000 rules',
          'largest policy',
          'its rules',
          'one call per rule vs moat apply',
        ],
        perRule.map((r) => {
          const call = r.perRuleCall ?? Number.NaN;
          // The largest policy measured on the same host, applied one call per rule.
          const big = rows
            .filter((x) => x.backend === r.backend && x.foreign === r.foreign)
            .reduce((a, b) => (b.containers > a.containers ? b : a), r);
          return [
            r.backend,
            String(r.foreign),
            `${(call * 1000).toFixed(1)} ms`,
            `${seconds(call * 1000)} s`,
            `${big.containers} groups`,
            String(big.freshRules),
            `${seconds(call * big.freshRules)} s vs ${seconds(big.applyFresh)} s`,
          ];
        }),
      ),
    );
  }
  if (inProcess.length > 0) {
    console.log('\n## in-process (built dist modules), medians, milliseconds\n');
    console.log(
      formatTable(
        [
          'backend',
          'foreign',
          'groups',
          'parse policy (cold)',
          'compile+diff (cold)',
          'parse policy',
          'parse saves',
          'compile',
          'diff (no-op)',
          'compile+diff (fresh)',
        ],
        inProcess.map((p) => [
          p.backend,
          String(p.foreign),
          String(p.containers),
          (p.firstPolicyParse * 1000).toFixed(1),
          (p.firstCompileDiff * 1000).toFixed(1),
          (p.policyParse * 1000).toFixed(1),
          (p.saveParse * 1000).toFixed(1),
          (p.compile * 1000).toFixed(1),
          (p.diff * 1000).toFixed(1),
          (p.compileDiffFresh * 1000).toFixed(1),
        ]),
      ),
    );
  }
  console.log(
    `\nstartup: node -e 0 ${seconds(startup.node)} s; moat --version ${seconds(startup.moat)} s`,
  );
  targets(rows, inProcess);
}

/** Issue 8's targets, judged from this run's figures. */
function targets(rows: readonly Row[], inProcess: readonly InProcess[]): void {
  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  const lines: string[] = [];
  const biggest = Math.max(...rows.map((r) => r.foreign));
  for (const r of rows.filter((x) => x.foreign === biggest)) {
    const limit = r.backend === 'nft' ? 1.2 : 1.5;
    const planRatio = r.plan / r.rawSave4;
    const rawChange = r.rawRead + r.rawChangeRestore;
    const applyRatio = r.applyChange / rawChange;
    lines.push(
      `${r.backend} ${r.foreign} foreign, ${r.containers} groups: ` +
        `plan ${planRatio.toFixed(1)}× iptables-save (≤ ${limit}×: ${verdict(planRatio <= limit)}); ` +
        `one-container change ${applyRatio.toFixed(1)}× raw read + restore (≤ 1.5×: ${verdict(applyRatio <= 1.5)}); ` +
        `peak ${mib(Math.max(r.planPeakMiB ?? 0, r.applyPeakMiB ?? 0))} (< 150 MiB: ${verdict(
          Math.max(r.planPeakMiB ?? 0, r.applyPeakMiB ?? 0) < 150,
        )})`,
    );
  }
  // Proportional: the change's restore input does not grow with the host.
  for (const backend of new Set(rows.map((r) => r.backend))) {
    for (const containers of new Set(rows.map((r) => r.containers))) {
      const same = rows.filter((r) => r.backend === backend && r.containers === containers);
      if (same.length < 2) continue;
      const sizes = same.map((r) => r.changeBytes);
      const spread = Math.max(...sizes) / Math.min(...sizes);
      lines.push(
        `${backend} ${containers} groups: change input ${sizes.map(kib).join(' / ')} over ` +
          `${same.map((r) => r.foreign).join(' / ')} foreign rules (proportional to the change: ${verdict(spread < 1.5)})`,
      );
    }
  }
  for (const p of inProcess) {
    lines.push(
      `${p.backend} ${p.containers} groups: compile+diff ${(p.firstCompileDiff * 1000).toFixed(0)} ms cold, ` +
        `${((p.compile + p.diff) * 1000).toFixed(0)} ms warm (< 200 ms: ${verdict(p.firstCompileDiff < 0.2)})`,
    );
  }
  console.log('\n## targets (issue 8)\n');
  for (const line of lines) console.log(`- ${line}`);
}

/** moat watch: idle cost, and repair latency per kind of tampering. */
function reportWatch(rows: readonly WatchRow[]): void {
  console.log(
    '\n## moat watch: idle CPU, and repair latency after each kind of tampering (ms, median / max)\n',
  );
  console.log(
    formatTable(
      [
        'backend',
        'foreign',
        'notices with',
        'idle CPU s/hour',
        'full read',
        'polled /250 ms: CPU s/hour',
        ...MEASURED,
      ],
      rows.map((r) => [
        r.backend,
        String(r.foreign),
        r.probes,
        r.idleCpuPerHour.toFixed(1),
        `${(r.fullRead * 1000).toFixed(0)} ms`,
        // what reading the tables in full every 250 ms would cost instead, at least
        (r.fullRead * 4 * 3600).toFixed(0),
        ...MEASURED.map((name) => {
          const ms = r.latencies.get(name) ?? [];
          return `${median(ms).toFixed(0)} / ${Math.max(...ms).toFixed(0)}`;
        }),
      ]),
    ),
  );
  console.log(
    `\nidle: CPU of watch and its probes over ${rows[0]?.idleWindowSeconds ?? '?'} s with nothing changing, per hour; ` +
      'latency: from the tampering command exiting to watch having repaired (its log); ' +
      "a late container: from Docker's start event to the end of watch's pass (debounce 2 s included).",
  );
}

/** The exposure window after `docker run`, per Docker target, case and family. */
function reportExposure(rows: readonly ExposureRow[]): void {
  console.log('\n## exposure after `docker run` (real dockerd, real packets)\n');
  const ms = (n: number | undefined) => (n === undefined ? '—' : String(n));
  console.log(
    formatTable(
      ['Docker', 'moat', 'case', 'family', 'ready ms', 'leaked', 'window ms', 'first drop ms'],
      rows.map((r) => [
        r.target,
        r.moat,
        r.case,
        r.family,
        ms(r.readyMs),
        String(r.leaked),
        String(r.windowMs),
        ms(r.firstDropMs),
      ]),
    ),
  );
  console.log(
    '\nms are from `docker run` returning. ready: the host first reaches the port, or the ' +
      'recreated container first gets out on its allowed port; leaked: connections the policy ' +
      'forbids that got through; window: to the last of them (0: none); first drop: the first ' +
      'outside connection that timed out. "not running": after `moat apply`, no moat process.',
  );
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0)
    throw new Error('the benchmark needs root (network namespaces, iptables)');
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  for (const backend of options.backends) {
    const probe = await timedRun(tool(backend, 'ipv4', 'save'), ['--version']);
    if (probe.exitCode !== 0) throw new Error(`${tool(backend, 'ipv4', 'save')} is not installed`);
  }
  const modules = await loadModules();
  log(
    `moat bench: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
      `load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}, node ${process.version}, runs ${options.runs}`,
  );
  const startup = {
    node: await times(5, async () => (await timedChecked(process.execPath, ['-e', '0'])).seconds),
    // node plus loading moat's whole module graph: the floor of every moat command
    moat: await times(
      5,
      async () => (await timedChecked(process.execPath, [CLI, '--version'])).seconds,
    ),
  };
  const apiDir = mkdtempSync(join(tmpdir(), 'moat-bench-api-'));
  // Also when the run dies early (a closed pipe, an exception): nothing is left in /tmp.
  process.once('exit', () => {
    rmSync(apiDir, { recursive: true, force: true });
  });
  const api = await FakeDockerApi.start(apiDir, makeInventory(0));
  const rows: Row[] = [];
  const inProcess: InProcess[] = [];
  const started = Date.now();
  if (options.profile !== undefined) {
    try {
      await profileHost(
        options.profile,
        options.backends,
        Math.max(...options.rules),
        options.containers,
        api,
        modules,
      );
    } finally {
      await api.close();
      rmSync(apiDir, { recursive: true, force: true });
      destroyAll();
    }
    return;
  }
  const watchRows: WatchRow[] = [];
  const exposureRows: ExposureRow[] = [];
  const only = options.watchOnly || options.exposureOnly;
  try {
    for (const backend of only ? [] : options.backends) {
      for (const foreign of options.rules) {
        for (const containers of options.containers) {
          const t0 = Date.now();
          const row = await scenario(
            options,
            modules,
            api,
            backend,
            foreign,
            containers,
            inProcess,
          );
          rows.push(row);
          log(
            `  ${backend} ${foreign} foreign, ${containers} groups: plan ${seconds(row.plan)} s ` +
              `(save ${seconds(row.rawSave4)}), apply ${seconds(row.applyFresh)}, change ${seconds(row.applyChange)} ` +
              `[${((Date.now() - t0) / 1000).toFixed(0)} s, load ${loadavg()[0]?.toFixed(2) ?? '?'}]`,
          );
        }
      }
    }
    for (const backend of options.exposureOnly ? [] : options.backends) {
      for (const foreign of options.watchRules) {
        watchRows.push(
          await watchScenario(backend, foreign, api, modules, {
            idleSeconds: options.watchIdleSeconds,
            repeats: options.watchRepeats,
            log,
          }),
        );
      }
    }
    for (const target of options.watchOnly ? [] : options.exposureTargets)
      exposureRows.push(...(await exposureScenario(target, log)));
  } finally {
    await api.close();
    rmSync(apiDir, { recursive: true, force: true });
    destroyAll();
  }
  if (rows.length > 0) report(rows, inProcess, startup);
  if (watchRows.length > 0) reportWatch(watchRows);
  if (exposureRows.length > 0) reportExposure(exposureRows);
  console.log(
    `total ${((Date.now() - started) / 1000).toFixed(0)} s; load now ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  if (options.json !== undefined)
    writeFileSync(
      options.json,
      JSON.stringify(
        {
          options,
          startup,
          rows,
          inProcess,
          watch: watchRows.map((w) => ({ ...w, latencies: Object.fromEntries(w.latencies) })),
          exposure: exposureRows,
          cpus: cpus().length,
        },
        null,
        2,
      ) + '\n',
    );
}

main().catch((error: unknown) => {
  destroyAll();
  console.error(
    `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  process.exitCode = 1;
});

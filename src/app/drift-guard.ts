/**
 * The part of `moat watch` that repairs moat's objects within a second of someone changing
 * them (`iptables -F MOAT-FORWARD`, a firewall reload flushing DOCKER-USER, `ipset flush`).
 *
 * Probes (src/host/change-probes.ts) say that something may have changed; the governor
 * (src/watch/governor.ts) decides when to look and when to repair; a look (src/app/repair.ts)
 * reads only moat's chains, hooks and sets under the apply lock and compares them with what the
 * last pass applied, and a repair puts that back from the same read; when it cannot, a full
 * reconcile pass runs through watch (which never runs two at once). Repairs are logged with
 * what had drifted and counted in STATE_DIR/watch.json and the metrics; so is a fight with
 * another program.
 */
import { ApplyFailedError } from '../apply/apply.js';
import type { DesiredState } from '../compile/model.js';
import { SubprocessError } from '../core/errors.js';
import {
  ruleProbeCommands,
  ipsetProbeCommand,
  startProbe,
  startProbes,
  type Probe,
  type ProbeListener,
} from '../host/change-probes.js';
import type { IptablesBackend, LiveNetfilter } from '../netfilter/model.js';
import { ANYTHING, type ChangeHint } from '../netfilter/parse-monitor.js';
import { driftedObjects } from '../plan/drift.js';
import { FAMILIES, type Family } from '../policy/model.js';
import { writeWatchState, type WatchState } from '../state/watch-state.js';
import {
  DEFAULT_GOVERNOR_SETTINGS,
  RepairGovernor,
  type FightReport,
  type GovernorAction,
  type GovernorSettings,
  type RepairResult,
} from '../watch/governor.js';
import { concerns, ScopeBuilder } from '../watch/scope.js';
import type { ApplyOutcome } from './apply-locked.js';
import type { Context } from './context.js';
import { refreshMetricsFile } from './metrics-file.js';
import { inspectAndRepair, type RepairStages } from './repair.js';

export interface DriftGuardOptions {
  readonly lockFile: string;
  readonly lockTimeoutMs: number;
  readonly stateDir: string;
  readonly metricsFile?: string;
  readonly settings?: GovernorSettings;
  /** How often the legacy probe asks the kernel for the tables' size. */
  readonly legacyPollMs?: number;
  /** How often the ipset probe asks for the sets' headers. */
  readonly ipsetPollMs?: number;
}

export interface DriftGuardHooks {
  /** One line of watch's log; `fields` go into the JSON form. */
  readonly log: (
    message: string,
    fields?: Record<string, unknown>,
    level?: 'info' | 'warn',
  ) => void;
  /** Runs a full reconcile pass (after any running one); true when it succeeded. */
  readonly reconcile: (why: string) => Promise<boolean>;
  /** Resolves once no pass is running, so a look never sees a half-applied host. */
  readonly idle: () => Promise<void>;
  /** Starts a probe; tests substitute their own. */
  readonly startProbe?: (kind: ProbeKind, listener: ProbeListener) => Probe | undefined;
  readonly now?: () => number;
}

export type ProbeKind = { kind: 'rules'; backend: IptablesBackend } | { kind: 'ipset' };

const LEGACY_POLL_MS = 250;
const IPSET_POLL_MS = 250;
/** After a probe starts, when to look once (it has subscribed by then). */
const FIRST_LOOK_MS = 200;

/** What the last successful pass left on the host: what a look compares with. */
interface Guarded {
  readonly desired: DesiredState;
  readonly backend: IptablesBackend;
  readonly tableRules: Record<Family, number>;
}

/** When a look began, and where its repair's time went. */
interface Timing {
  readonly lookAt: number;
  readonly stages: RepairStages;
}

/** A change of watch's state; `undefined` removes a field. */
type StateChange = { [K in keyof WatchState]?: WatchState[K] | undefined };

function tableRules(live: LiveNetfilter): Record<Family, number> {
  const out = { ipv4: 0, ipv6: 0 };
  for (const family of FAMILIES) {
    for (const chain of live.rulesets[family].tables.get('filter')?.chains.values() ?? []) {
      out[family] += chain.rules.length;
    }
  }
  return out;
}

type RepairAction = Extract<GovernorAction, { kind: 'repair' }>;

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

function holdsObjects(desired: DesiredState): boolean {
  return desired.ipsets.length > 0 || FAMILIES.some((f) => desired.families[f].chains.length > 0);
}

export class DriftGuard {
  private readonly governor: RepairGovernor;
  private readonly now: () => number;
  private guarded: Guarded | undefined;
  private ruleProbe: { probe: Probe; backend: IptablesBackend } | undefined;
  private ipsetProbe: Probe | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy: Promise<void> = Promise.resolve();
  private repairing = false;
  /** Passes that changed the host: a repair compares the count before and after. */
  private changingPasses = 0;
  private readonly warned = new Set<string>();
  /** What the notices since the last look said was touched. */
  private readonly scope = new ScopeBuilder();
  private state: WatchState;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: Context,
    private readonly options: DriftGuardOptions,
    private readonly hooks: DriftGuardHooks,
  ) {
    this.governor = new RepairGovernor(options.settings ?? DEFAULT_GOVERNOR_SETTINGS);
    this.now = hooks.now ?? Date.now;
    this.state = {
      pid: process.pid,
      started: new Date(this.now()).toISOString(),
      probes: [],
      repairs: 0,
      truces: 0,
    };
  }

  /** Every pass's outcome: what moat's objects should now be, and any drift it repaired. */
  observe(outcome: ApplyOutcome): void {
    if (this.stopped) return;
    if (outcome.changed) this.changingPasses += 1;
    // A pass (Docker event, interval) that found drift before the probes did; a pass this
    // guard ran itself is counted by `repair`.
    if (!this.repairing && driftedObjects(outcome.plan).length > 0 && outcome.changed) {
      this.hooks.log(`the pass repaired drift: ${driftedObjects(outcome.plan).join(', ')}`, {
        drift: driftedObjects(outcome.plan),
      });
      this.update({ repairs: this.state.repairs + 1 });
    }
    // Only passes that succeeded are observed: the host now holds `desired`.
    this.guarded = {
      desired: outcome.desired,
      backend: outcome.backend,
      tableRules: tableRules(outcome.live),
    };
    this.adjustProbes();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const probes = [this.ruleProbe?.probe, this.ipsetProbe].filter((p) => p !== undefined);
    this.ruleProbe = undefined;
    this.ipsetProbe = undefined;
    await Promise.all(probes.map((p) => p.stop()));
    await this.busy;
    await this.persist({ stopped: new Date(this.now()).toISOString() });
  }

  private adjustProbes(): void {
    const guarded = this.guarded;
    const wanted = guarded !== undefined && holdsObjects(guarded.desired);
    const listener: ProbeListener = {
      changed: (_source, hints) => {
        this.noticed(hints);
      },
      warn: (message) => {
        this.hooks.log(`warning: ${message}`, {}, 'warn');
      },
    };
    if (!wanted || this.ruleProbe?.backend !== guarded.backend) {
      void this.ruleProbe?.probe.stop();
      this.ruleProbe = undefined;
    }
    if (wanted && this.ruleProbe === undefined) {
      const probe = this.startProbe({ kind: 'rules', backend: guarded.backend }, listener);
      if (probe !== undefined) {
        this.ruleProbe = { probe, backend: guarded.backend };
        // What changed between the pass and the probe's start is seen by one first look.
        setTimeout(() => {
          this.noticed([ANYTHING]);
        }, FIRST_LOOK_MS).unref();
      } else
        this.warnOnce(
          `no change notifications for the ${guarded.backend} backend on this host ` +
            `(${guarded.backend === 'nft' ? 'neither nft nor xtables-monitor with stdbuf' : 'no perl, or an architecture the legacy probe does not know'}): ` +
            'drift is repaired at the next --interval',
        );
    }
    const sets = wanted && guarded.desired.ipsets.length > 0;
    if (!sets && this.ipsetProbe !== undefined) {
      void this.ipsetProbe.stop();
      this.ipsetProbe = undefined;
    }
    if (sets && this.ipsetProbe === undefined) {
      this.ipsetProbe = this.startProbe({ kind: 'ipset' }, listener);
      if (this.ipsetProbe === undefined)
        this.warnOnce(
          'no perl or stdbuf on this host: changes to moat ipsets are repaired at the next --interval',
        );
    }
    const probes = [this.ruleProbe?.probe.name, this.ipsetProbe?.name].filter(
      (n) => n !== undefined,
    );
    if (probes.join() !== this.state.probes.join()) {
      if (probes.length > 0) this.hooks.log(`noticing changes with ${probes.join(' and ')}`);
      this.update({ probes });
    }
  }

  /** A probe's hints: those that can concern moat's objects make a notice and widen the look. */
  private noticed(hints: readonly ChangeHint[]): void {
    const guarded = this.guarded;
    if (this.stopped || guarded === undefined) return;
    const relevant = hints.filter((hint) => concerns(hint, guarded.desired));
    if (relevant.length === 0) return; // Docker's own chains, another table: nothing of moat's
    for (const hint of relevant) this.scope.add(hint);
    this.input(this.governor.notice(this.now()));
  }

  private startProbe(kind: ProbeKind, listener: ProbeListener): Probe | undefined {
    if (this.hooks.startProbe !== undefined) return this.hooks.startProbe(kind, listener);
    if (kind.kind === 'ipset') {
      const command = ipsetProbeCommand(this.options.ipsetPollMs ?? IPSET_POLL_MS);
      return command === undefined ? undefined : startProbe(command, listener);
    }
    const commands = ruleProbeCommands(kind.backend, {
      legacyPollMs: this.options.legacyPollMs ?? LEGACY_POLL_MS,
    });
    return commands === undefined ? undefined : startProbes(commands, listener);
  }

  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.hooks.log(`warning: ${message}`, {}, 'warn');
  }

  /** Feeds the governor's actions in, one at a time, and keeps its wake-up timer. */
  private input(actions: readonly GovernorAction[]): void {
    if (this.stopped) return;
    for (const action of actions) {
      if (action.kind === 'report') this.report(action.report);
      else this.busy = this.busy.then(() => this.run(action));
    }
    clearTimeout(this.timer);
    const wake = this.governor.wakeAt();
    if (wake !== undefined) {
      this.timer = setTimeout(
        () => {
          this.input(this.governor.tick(this.now()));
        },
        Math.max(0, wake - this.now()),
      );
    }
  }

  /**
   * A look, under the apply lock, and the repair the governor decides on from the same read;
   * when the host cannot be read, a full reconcile pass if the governor wants a repair.
   */
  private async run(action: GovernorAction): Promise<void> {
    if (this.stopped || action.kind !== 'check') return;
    await this.hooks.idle();
    const guarded = this.guarded;
    if (guarded === undefined) {
      this.input(this.governor.checked(this.now(), []));
      return;
    }
    const decision: { repair?: RepairAction } = {};
    const decide = (drift: readonly string[]): boolean => {
      const repair = this.decide(drift);
      if (repair !== undefined) decision.repair = repair;
      return repair !== undefined;
    };
    this.repairing = true;
    try {
      let result: RepairResult;
      let timing: Timing | undefined;
      try {
        const scope = this.scope.take();
        const lookAt = this.now();
        const inspection = await inspectAndRepair(this.ctx, this.options, guarded, scope, decide);
        result = inspection.repaired ? 'changed' : 'unchanged';
        timing = { lookAt, stages: inspection.stages };
      } catch (error) {
        if (decision.repair === undefined) {
          // Could not look: whether to reconcile in full is the governor's call, as for drift.
          const repair = this.decide([`unreadable: ${firstLine(error)}`]);
          if (repair === undefined) return;
          decision.repair = repair;
          result = await this.reconcileInFull(repair.drift);
        } else {
          result = await this.afterFailedRepair(error, decision.repair.drift);
        }
      }
      if (decision.repair !== undefined) await this.finish(decision.repair, result, timing);
    } finally {
      this.repairing = false;
    }
  }

  /** Tells the governor what a look found; returns the repair it decides on, if any. */
  private decide(drift: readonly string[]): RepairAction | undefined {
    const actions = this.governor.checked(this.now(), drift);
    this.input(actions.filter((a) => a.kind !== 'repair'));
    return actions.find((a): a is RepairAction => a.kind === 'repair');
  }

  private async finish(repair: RepairAction, result: RepairResult, timing?: Timing): Promise<void> {
    const end = this.now();
    if (result === 'changed') {
      const latency = end - repair.noticedAt;
      // From the first notice to the look (the burst settling, a pass finishing), then the look's.
      const stages =
        timing === undefined
          ? {}
          : { stages_ms: { notice: timing.lookAt - repair.noticedAt, ...timing.stages } };
      this.hooks.log(`repaired in ${latency} ms: ${repair.drift.join(', ')}`, {
        drift: repair.drift,
        latency_ms: latency,
        ...stages,
      });
      await this.persist({
        repairs: this.state.repairs + 1,
        last_repair: {
          time: new Date(end).toISOString(),
          drift: repair.drift,
          latency_ms: latency,
        },
      });
    }
    this.input(this.governor.repaired(end, result));
  }

  private async reconcileInFull(drift: readonly string[]): Promise<RepairResult> {
    const before = this.changingPasses;
    const ok = await this.hooks.reconcile(`drift: ${drift.join(', ')}`);
    return !ok ? 'failed' : this.changingPasses > before ? 'changed' : 'unchanged';
  }

  /**
   * A quick repair whose writes were undone before its verification read them back (another
   * program is at work: the governor counts it and looks again) is not retried in full; one
   * that could not write (a hook chain is gone, say) is, since a full pass compiles afresh.
   */
  private async afterFailedRepair(error: unknown, drift: readonly string[]): Promise<RepairResult> {
    const message = firstLine(error);
    const cause = error instanceof ApplyFailedError ? error.cause : error;
    if (error instanceof ApplyFailedError && !(cause instanceof SubprocessError)) {
      this.hooks.log(`the repair did not hold: ${message}`, { drift }, 'warn');
      return 'failed';
    }
    this.hooks.log(
      `warning: the quick repair failed (${message}); reconciling in full`,
      {},
      'warn',
    );
    return this.reconcileInFull(drift);
  }

  private report(report: FightReport): void {
    const fight = this.governor.currentFight();
    if (report.kind === 'fight') {
      const what = report.drift.join(', ');
      this.hooks.log(
        report.round === 1
          ? `another program keeps undoing moat's repair (${report.repairs} repairs of ${what}); ` +
              `holding repairs for ${report.holdMs / 1000}s`
          : `the drift came back after the hold's repair (${what}); holding repairs for ` +
              `${report.holdMs / 1000}s (round ${report.round})`,
        {
          drift: report.drift,
          round: report.round,
          repairs: report.repairs,
          hold_ms: report.holdMs,
        },
        'warn',
      );
    } else {
      this.hooks.log(
        `the fight is over: no drift since the last repair (${report.rounds} rounds)`,
        {
          rounds: report.rounds,
        },
      );
    }
    const iso = (ms: number): string => new Date(ms).toISOString();
    this.update(
      fight === undefined
        ? { fight: undefined, truces: this.state.truces + (report.kind === 'truce' ? 1 : 0) }
        : {
            fight: {
              since: iso(fight.since),
              drift: fight.drift,
              round: fight.round,
              repairs: fight.repairs,
              hold_until: iso(fight.holdUntil),
            },
          },
    );
  }

  private update(change: StateChange): void {
    void this.persist(change);
  }

  /** Updates the state and writes it, one write at a time, always the newest state. */
  private persist(change: StateChange): Promise<void> {
    const merged = Object.entries({ ...this.state, ...change });
    this.state = Object.fromEntries(
      merged.filter(([, v]) => v !== undefined),
    ) as unknown as WatchState;
    this.writing = this.writing.then(() => this.write());
    return this.writing;
  }

  private async write(): Promise<void> {
    const next = this.state;
    try {
      await writeWatchState(this.options.stateDir, next);
      if (this.options.metricsFile !== undefined) {
        await refreshMetricsFile(
          this.options.stateDir,
          this.options.metricsFile,
          this.guarded?.backend,
        );
      }
    } catch (error) {
      this.hooks.log(
        `warning: could not write ${this.options.stateDir}/watch.json: ${(error as Error).message}`,
        {},
        'warn',
      );
    }
  }
}

/**
 * watch's repair decisions, pure: when to look at moat's objects after the kernel said something
 * changed, when to repair what the look found, and when to stop fighting another program that
 * keeps undoing the repairs. No clock, no timers, no processes: every input carries its time,
 * and the driver (src/app/drift-guard.ts) asks `wakeAt()` when to call `tick` next.
 *
 * - A burst of change notices gives one check: the check runs `settleMs` after the last notice,
 *   and at the latest `maxSettleMs` after the first (a steady stream cannot starve it).
 * - A check that finds drift repairs it at once, unless the same drift was repaired
 *   `loopRepairs` times within `loopWindowMs`: another program is rewriting the same rules.
 *   Repairs then stop for a hold of `firstHoldMs`, doubled each round up to `maxHoldMs`. After a
 *   hold, the drift (if still there) is repaired once; if it comes back within the window, the
 *   next, longer hold starts. A window without drift after that repair ends the fight. No
 *   check runs during a hold, however often the other program writes.
 * - A failed check or repair counts like a repair of that drift, so a host where repairs keep
 *   failing is backed off the same way.
 */

export interface GovernorSettings {
  /** Quiet time after the last change notice before checking. */
  readonly settleMs: number;
  /** The longest a check waits after the first notice of a burst. */
  readonly maxSettleMs: number;
  /** This many repairs of the same drift within `loopWindowMs` are a fight. */
  readonly loopRepairs: number;
  readonly loopWindowMs: number;
  readonly firstHoldMs: number;
  readonly maxHoldMs: number;
}

export const DEFAULT_GOVERNOR_SETTINGS: GovernorSettings = {
  settleMs: 100,
  maxSettleMs: 400,
  loopRepairs: 5,
  loopWindowMs: 10_000,
  firstHoldMs: 5_000,
  maxHoldMs: 300_000,
};

/** What the driver must do now. */
export type GovernorAction =
  | { readonly kind: 'check' }
  | {
      readonly kind: 'repair';
      readonly drift: readonly string[];
      /** When the first change notice of this drift arrived: the repair latency starts here. */
      readonly noticedAt: number;
    }
  | { readonly kind: 'report'; readonly report: FightReport };

/** Changes of the fight state, for the log, the status file and the metrics. */
export type FightReport =
  | {
      /** A fight began (round 1) or the drift came back after a hold's repair (round > 1). */
      readonly kind: 'fight';
      readonly drift: readonly string[];
      readonly round: number;
      readonly repairs: number;
      readonly holdMs: number;
    }
  | {
      /** A window passed without drift after the last repair: the other program stopped. */
      readonly kind: 'truce';
      readonly since: number;
      readonly rounds: number;
    };

/** The fight in progress, if any. */
export interface Fight {
  readonly since: number;
  readonly drift: readonly string[];
  readonly round: number;
  /** Repairs of this drift since the fight began, those before it included. */
  readonly repairs: number;
  readonly holdUntil: number;
}

export type RepairResult = 'changed' | 'unchanged' | 'failed';

type Phase = 'idle' | 'settling' | 'checking' | 'repairing';

interface MutableFight {
  since: number;
  drift: readonly string[];
  round: number;
  repairs: number;
  holdUntil: number;
  /** Drift was found during the hold: check again when it ends. */
  pending: boolean;
  /** The repair made after the current hold, if made. */
  probedAt?: number;
}

const NO_ACTIONS: readonly GovernorAction[] = [];

export class RepairGovernor {
  private phase: Phase = 'idle';
  private firstNotice = 0;
  private lastNotice = 0;
  /** The first notice of the drift being checked or repaired. */
  private noticedAt = 0;
  /** A notice arrived while checking or repairing: look again afterwards. */
  private dirty = false;
  private repairs: { at: number; signature: string }[] = [];
  private lastDrift: readonly string[] = [];
  private fight: MutableFight | undefined;

  constructor(private readonly settings: GovernorSettings = DEFAULT_GOVERNOR_SETTINGS) {}

  /** The kernel (or a probe) says something may have changed. */
  notice(at: number): readonly GovernorAction[] {
    const fight = this.fight;
    if (fight !== undefined && at < fight.holdUntil && this.phase === 'idle') {
      // Holding: no check until the hold ends, however often the other program writes.
      fight.pending = true;
    } else if (this.phase === 'checking' || this.phase === 'repairing') {
      this.dirty = true;
    } else if (this.phase === 'settling') {
      this.lastNotice = at;
    } else {
      this.settle(at);
    }
    return NO_ACTIONS;
  }

  /** When the driver should call `tick` next; undefined: only on the next input. */
  wakeAt(): number | undefined {
    const times: number[] = [];
    if (this.phase === 'settling') {
      times.push(
        Math.min(
          this.lastNotice + this.settings.settleMs,
          this.firstNotice + this.settings.maxSettleMs,
        ),
      );
    }
    const fight = this.fight;
    if (fight !== undefined && this.phase === 'idle') {
      if (fight.pending) times.push(fight.holdUntil);
      if (fight.probedAt !== undefined) times.push(fight.probedAt + this.settings.loopWindowMs);
    }
    return times.length === 0 ? undefined : Math.min(...times);
  }

  tick(at: number): readonly GovernorAction[] {
    const wake = this.wakeAt();
    if (wake === undefined || at < wake) return NO_ACTIONS;
    if (this.phase === 'settling') return this.startCheck(this.firstNotice);
    const fight = this.fight;
    if (fight === undefined || this.phase !== 'idle') return NO_ACTIONS;
    if (fight.pending && at >= fight.holdUntil) {
      fight.pending = false;
      return this.startCheck(at);
    }
    if (fight.probedAt !== undefined && at >= fight.probedAt + this.settings.loopWindowMs) {
      this.fight = undefined;
      return [
        { kind: 'report', report: { kind: 'truce', since: fight.since, rounds: fight.round } },
      ];
    }
    return NO_ACTIONS;
  }

  /** The check finished: `drift` describes what differs from what moat wants (empty: nothing). */
  checked(at: number, drift: readonly string[]): readonly GovernorAction[] {
    if (this.phase !== 'checking') return NO_ACTIONS;
    this.phase = 'idle';
    const dirty = this.dirty;
    this.dirty = false;
    if (drift.length === 0) {
      if (dirty) this.settle(at);
      return NO_ACTIONS;
    }
    const fight = this.fight;
    if (fight !== undefined) return this.duringFight(at, fight, drift);
    const signature = drift.join('\n');
    this.forget(at);
    const count = this.repairs.filter((r) => r.signature === signature).length;
    if (count >= this.settings.loopRepairs) {
      const started: MutableFight = {
        since: at,
        drift,
        round: 1,
        repairs: count,
        holdUntil: at + this.settings.firstHoldMs,
        pending: true,
      };
      this.fight = started;
      return [{ kind: 'report', report: this.fightReport(started) }];
    }
    return this.startRepair(drift);
  }

  /**
   * The repair pass ended: it `changed` the host, found it already `unchanged` (another pass
   * got there first: not a repair), or `failed`. A failure counts as a repair and is checked
   * again, so repairs that keep failing are backed off like a fight.
   */
  repaired(at: number, result: RepairResult): readonly GovernorAction[] {
    if (this.phase !== 'repairing') return NO_ACTIONS;
    this.phase = 'idle';
    const counted = result !== 'unchanged';
    if (counted) this.repairs.push({ at, signature: this.lastDrift.join('\n') });
    if (this.fight !== undefined) {
      this.fight.probedAt = at;
      if (counted) this.fight.repairs += 1;
    }
    if (this.dirty || result === 'failed') {
      this.dirty = false;
      this.settle(at);
    }
    return NO_ACTIONS;
  }

  /** The fight in progress, for status and metrics. */
  currentFight(): Fight | undefined {
    const f = this.fight;
    return f === undefined
      ? undefined
      : {
          since: f.since,
          drift: f.drift,
          round: f.round,
          repairs: f.repairs,
          holdUntil: f.holdUntil,
        };
  }

  private duringFight(
    at: number,
    fight: MutableFight,
    drift: readonly string[],
  ): readonly GovernorAction[] {
    if (at < fight.holdUntil) {
      fight.pending = true;
      return NO_ACTIONS;
    }
    if (fight.probedAt === undefined) return this.startRepair(drift);
    // The drift came back after the hold's repair: the other program is still at it.
    fight.round += 1;
    fight.drift = drift;
    fight.holdUntil = at + this.holdMs(fight.round);
    fight.pending = true;
    delete fight.probedAt;
    return [{ kind: 'report', report: this.fightReport(fight) }];
  }

  private holdMs(round: number): number {
    return Math.min(this.settings.firstHoldMs * 2 ** (round - 1), this.settings.maxHoldMs);
  }

  private fightReport(fight: MutableFight): FightReport {
    return {
      kind: 'fight',
      drift: fight.drift,
      round: fight.round,
      repairs: fight.repairs,
      holdMs: this.holdMs(fight.round),
    };
  }

  private settle(at: number): void {
    this.phase = 'settling';
    this.firstNotice = at;
    this.lastNotice = at;
  }

  private startCheck(noticedAt: number): readonly GovernorAction[] {
    this.phase = 'checking';
    this.noticedAt = noticedAt;
    return [{ kind: 'check' }];
  }

  private startRepair(drift: readonly string[]): readonly GovernorAction[] {
    this.phase = 'repairing';
    this.lastDrift = drift;
    return [{ kind: 'repair', drift, noticedAt: this.noticedAt }];
  }

  /** Repairs older than the loop window no longer count. */
  private forget(at: number): void {
    this.repairs = this.repairs.filter((r) => at - r.at < this.settings.loopWindowMs);
  }
}

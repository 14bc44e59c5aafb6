/**
 * watch's repair decisions, driven by an injected stream of events on a simulated clock: a
 * host whose moat objects other programs tamper with, a check and a repair that take time,
 * and the governor deciding. No timers, no processes: thousands of simulated seconds run in
 * milliseconds, and every figure below is exact.
 */
import { describe, expect, test } from '@jest/globals';
import {
  DEFAULT_GOVERNOR_SETTINGS,
  RepairGovernor,
  type FightReport,
  type GovernorAction,
  type RepairResult,
} from '../../src/watch/governor.js';

const CHECK_MS = 30;
const REPAIR_MS = 250;
/** How long the kernel's notice takes to reach watch. */
const NOTICE_MS = 2;

interface Tamper {
  at: number;
  drift: string;
}

/** A simulated host and driver: what the real driver does, on a clock of its own. */
class Simulation {
  readonly governor = new RepairGovernor();
  now = 0;
  /** What differs from moat's wish on the host now. */
  readonly drift = new Set<string>();
  readonly repairs: { at: number; drift: readonly string[]; latency: number }[] = [];
  readonly checks: number[] = [];
  readonly reports: { at: number; report: FightReport }[] = [];
  failRepairs = false;
  private queue: { at: number; run: () => void }[] = [];

  schedule(at: number, run: () => void): void {
    // Kept in order of time, first come first served among equals.
    let i = this.queue.length;
    while (i > 0 && (this.queue[i - 1]?.at ?? 0) > at) i--;
    this.queue.splice(i, 0, { at, run });
  }

  /** Someone changes one of moat's objects at `at`. */
  tamper({ at, drift }: Tamper): void {
    this.schedule(at, () => {
      this.drift.add(drift);
      this.notice();
    });
  }

  /** A change that is not drift (Docker's own rules): the kernel notices, moat is in sync. */
  foreignChange(at: number): void {
    this.schedule(at, () => {
      this.notice();
    });
  }

  /** A program that deletes the same object every `periodMs` from `from` to `to`. */
  fighter(from: number, to: number, periodMs: number, drift: string): void {
    const strike = (at: number): void => {
      if (at >= to) return;
      this.schedule(at, () => {
        // Already deleted: `iptables -D` fails and changes nothing.
        if (!this.drift.has(drift)) {
          this.drift.add(drift);
          this.notice();
        }
        strike(at + periodMs);
      });
    };
    strike(from);
  }

  run(until: number): void {
    for (let guard = 0; guard < 1_000_000; guard++) {
      const wake = this.governor.wakeAt();
      const next = this.queue[0];
      const at = Math.min(next?.at ?? Infinity, wake ?? Infinity);
      if (at > until) break;
      this.now = at;
      if (next !== undefined && next.at === at) {
        this.queue.shift();
        next.run();
      } else {
        this.act(this.governor.tick(at));
      }
    }
    this.now = until;
  }

  private notice(): void {
    this.schedule(this.now + NOTICE_MS, () => {
      this.act(this.governor.notice(this.now));
    });
  }

  private act(actions: readonly GovernorAction[]): void {
    for (const action of actions) {
      if (action.kind === 'report') this.reports.push({ at: this.now, report: action.report });
      if (action.kind === 'check') {
        this.checks.push(this.now);
        this.schedule(this.now + CHECK_MS, () => {
          this.act(this.governor.checked(this.now, [...this.drift].sort()));
        });
      }
      if (action.kind === 'repair') {
        const noticedAt = action.noticedAt;
        const drift = action.drift;
        this.schedule(this.now + REPAIR_MS, () => {
          let result: RepairResult = 'unchanged';
          if (this.failRepairs) result = 'failed';
          else if (this.drift.size > 0) {
            this.drift.clear();
            result = 'changed';
            this.repairs.push({ at: this.now, drift, latency: this.now - noticedAt });
          }
          this.notice(); // moat's own writes are changes too
          this.act(this.governor.repaired(this.now, result));
        });
      }
    }
  }
}

describe('RepairGovernor', () => {
  test('one tampering: one check, one repair, within settle + check + repair of the notice', () => {
    const sim = new Simulation();
    sim.tamper({ at: 1000, drift: 'add-jump ipv4 DOCKER-USER' });
    sim.run(60_000);
    expect(sim.repairs).toEqual([
      {
        at: 1000 + NOTICE_MS + DEFAULT_GOVERNOR_SETTINGS.settleMs + CHECK_MS + REPAIR_MS,
        drift: ['add-jump ipv4 DOCKER-USER'],
        latency: DEFAULT_GOVERNOR_SETTINGS.settleMs + CHECK_MS + REPAIR_MS,
      },
    ]);
    // the check after moat's own repair finds nothing
    expect(sim.checks).toHaveLength(2);
    expect(sim.drift.size).toBe(0);
    expect(sim.reports).toEqual([]);
  });

  test('a burst of changes (a firewall reload) gives one repair of everything it drifted', () => {
    const sim = new Simulation();
    const drifts = [
      'update-chain ipv4 MOAT-FORWARD',
      'add-jump ipv4 DOCKER-USER',
      'update-set moat-office',
    ];
    drifts.forEach((drift, i) => {
      sim.tamper({ at: 1000 + i * 20, drift });
    });
    sim.run(60_000);
    expect(sim.repairs).toHaveLength(1);
    expect(sim.repairs[0]?.drift).toEqual([...drifts].sort());
    expect(sim.drift.size).toBe(0);
  });

  test('changes that are not drift cost a check and no repair', () => {
    const sim = new Simulation();
    sim.foreignChange(500);
    sim.foreignChange(520);
    sim.run(10_000);
    expect(sim.checks).toHaveLength(1);
    expect(sim.repairs).toHaveLength(0);
  });

  test('a steady stream of notices cannot starve the check: at most maxSettleMs after the first', () => {
    const sim = new Simulation();
    for (let at = 1000; at < 3000; at += 50) sim.foreignChange(at);
    sim.tamper({ at: 1010, drift: 'add-jump ipv4 INPUT' });
    sim.run(2000);
    expect(sim.checks[0]).toBe(1000 + NOTICE_MS + DEFAULT_GOVERNOR_SETTINGS.maxSettleMs);
    expect(sim.repairs).toHaveLength(1);
  });

  test('separate tamperings far apart are each repaired, and never taken for a fight', () => {
    const sim = new Simulation();
    for (let i = 0; i < 20; i++)
      sim.tamper({ at: 1000 + i * 3000, drift: 'update-chain ipv4 MOAT-INPUT' });
    sim.run(100_000);
    expect(sim.repairs).toHaveLength(20);
    expect(sim.reports).toEqual([]);
  });

  test('different drifts in quick succession are repaired: only the same drift makes a fight', () => {
    const sim = new Simulation();
    for (let i = 0; i < 8; i++)
      sim.tamper({ at: 1000 + i * 500, drift: `update-chain ipv4 MOAT-SRC-${i}` });
    sim.run(60_000);
    expect(sim.repairs).toHaveLength(8);
    expect(sim.reports).toEqual([]);
  });

  test('a program re-deleting the jump every 100 ms is detected, backed off exponentially, and the truce is reported', () => {
    const sim = new Simulation();
    const jump = 'add-jump ipv4 DOCKER-USER';
    const stop = 120_000;
    sim.fighter(1000, stop, 100, jump);
    // and Docker keeps writing its own rules meanwhile
    for (let at = 1050; at < stop; at += 300) sim.foreignChange(at);
    sim.run(stop + 120_000);

    const fights = sim.reports.filter((r) => r.report.kind === 'fight');
    expect(fights.map((r) => (r.report.kind === 'fight' ? r.report.holdMs : 0))).toEqual([
      5_000, 10_000, 20_000, 40_000, 80_000,
    ]);
    expect(fights[0]?.report).toMatchObject({ kind: 'fight', round: 1, repairs: 5, drift: [jump] });
    // Five repairs until the loop was seen, then one per hold: not a repair every 100 ms.
    const during = sim.repairs.filter((r) => r.at <= stop);
    expect(during).toHaveLength(5 + 4);
    // No check runs inside a hold, however often the kernel reports changes.
    for (const fight of fights) {
      if (fight.report.kind !== 'fight') continue;
      const holdEnd = fight.at + fight.report.holdMs;
      expect(sim.checks.filter((t) => t > fight.at && t < holdEnd)).toEqual([]);
    }
    // After the fighter stops, the hold in progress ends, the drift is repaired once, and a
    // quiet window later the fight is over.
    const last = fights.at(-1);
    if (last?.report.kind !== 'fight') throw new Error('no fight');
    const after = sim.repairs.filter((r) => r.at > stop);
    expect(after).toHaveLength(1);
    expect(after[0]?.at).toBe(last.at + last.report.holdMs + CHECK_MS + REPAIR_MS);
    expect(sim.reports.at(-1)?.report).toEqual({ kind: 'truce', since: fights[0]?.at, rounds: 5 });
    expect(sim.drift.size).toBe(0);
    expect(sim.governor.currentFight()).toBeUndefined();
  });

  test('holds stop growing at maxHoldMs', () => {
    const sim = new Simulation();
    sim.fighter(0, 3_600_000, 100, 'create-chain ipv4 MOAT-FORWARD');
    sim.run(3_600_000);
    const holds = sim.reports.flatMap((r) => (r.report.kind === 'fight' ? [r.report.holdMs] : []));
    expect(Math.max(...holds)).toBe(DEFAULT_GOVERNOR_SETTINGS.maxHoldMs);
    // an hour of fighting costs a few dozen repairs, not 36,000
    expect(sim.repairs.length).toBeLessThan(30);
    expect(sim.governor.currentFight()).toMatchObject({
      drift: ['create-chain ipv4 MOAT-FORWARD'],
    });
  });

  test('repairs that keep failing are retried, then backed off like a fight', () => {
    const sim = new Simulation();
    sim.failRepairs = true;
    sim.tamper({ at: 1000, drift: 'create-set moat-office' });
    sim.run(30_000);
    const fights = sim.reports.filter((r) => r.report.kind === 'fight');
    expect(fights.length).toBeGreaterThanOrEqual(1);
    expect(fights[0]?.report).toMatchObject({ round: 1, repairs: 5 });
    // once the cause is gone, the next round repairs it
    sim.failRepairs = false;
    sim.run(200_000);
    expect(sim.drift.size).toBe(0);
    expect(sim.reports.at(-1)?.report.kind).toBe('truce');
  });

  test('inputs out of turn are ignored', () => {
    const governor = new RepairGovernor();
    expect(governor.checked(0, ['x'])).toEqual([]);
    expect(governor.repaired(0, 'changed')).toEqual([]);
    expect(governor.tick(0)).toEqual([]);
    expect(governor.wakeAt()).toBeUndefined();
  });
});

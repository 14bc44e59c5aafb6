/**
 * What a running `moat watch` reports about its repairs (STATE_DIR/watch.json): how it notices
 * changes, how many repairs it made and how fast, and whether it is fighting another program
 * that keeps undoing them. Read by `moat status` and rendered into the metrics file.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomically } from './runs.js';

export interface WatchRepair {
  readonly time: string;
  /** What had drifted, as the plan's steps say it (`add-jump ipv4 DOCKER-USER`). */
  readonly drift: readonly string[];
  /** From the first change notice to the end of the repair. */
  readonly latency_ms: number;
}

export interface WatchFight {
  readonly since: string;
  readonly drift: readonly string[];
  readonly round: number;
  readonly repairs: number;
  /** Until when repairs of this drift are held back. */
  readonly hold_until: string;
}

export interface WatchState {
  readonly pid: number;
  readonly started: string;
  /** Set when watch stopped cleanly; a state without it and without a live pid is stale. */
  readonly stopped?: string;
  /** How changes are noticed: `nft monitor`, `xtables-monitor`, `legacy probe`, `ipset`. */
  readonly probes: readonly string[];
  /** Drift repairs since watch started (by any pass). */
  readonly repairs: number;
  readonly last_repair?: WatchRepair;
  readonly fight?: WatchFight;
  /** Fights ended since watch started. */
  readonly truces: number;
}

export function watchStatePath(stateDir: string): string {
  return join(stateDir, 'watch.json');
}

export async function writeWatchState(stateDir: string, state: WatchState): Promise<void> {
  await writeAtomically(watchStatePath(stateDir), JSON.stringify(state, null, 2) + '\n');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The state of a watch that is running now, or undefined (none, stopped, or died). */
export async function readRunningWatch(stateDir: string): Promise<WatchState | undefined> {
  let state: WatchState;
  try {
    state = JSON.parse(await readFile(watchStatePath(stateDir), 'utf8')) as WatchState;
  } catch {
    return undefined;
  }
  if (typeof state.pid !== 'number' || state.stopped !== undefined) return undefined;
  return alive(state.pid) ? state : undefined;
}

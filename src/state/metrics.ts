/**
 * A node_exporter textfile with the outcome of moat's runs, what moat's rules dropped per policy
 * rule, and watch's repairs. Pure rendering.
 */
import type { DropReport } from '../plan/drops.js';
import type { RunHistory, RunRecord } from './runs.js';
import { lastWhere } from './runs.js';
import type { WatchState } from './watch-state.js';

function seconds(iso: string | undefined): number {
  return iso === undefined ? 0 : Date.parse(iso) / 1000;
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Counters of each policy rule's drops; absent when they could not be read this run. */
function dropMetrics(drops: DropReport | undefined): string[] {
  if (drops === undefined) return [];
  const series = (value: 'packets' | 'bytes'): string[] =>
    drops.rules.map(
      (r) =>
        `moat_dropped_${value}_total{group="${label(r.group)}",direction="${r.direction}",` +
        `rule="${label(r.rule)}",family="${r.family}"} ${r[value]}`,
    );
  return [
    "# HELP moat_dropped_packets_total Packets moat's DROP rules dropped, per policy rule, since the rule was written.",
    '# TYPE moat_dropped_packets_total counter',
    ...series('packets'),
    "# HELP moat_dropped_bytes_total Bytes moat's DROP rules dropped, per policy rule, since the rule was written.",
    '# TYPE moat_dropped_bytes_total counter',
    ...series('bytes'),
  ];
}

/** What a running watch adds: its repairs and whether it is fighting another program. */
function watchMetrics(watch: WatchState): string[] {
  const last = watch.last_repair;
  return [
    '# HELP moat_watch_repairs_total Drift repairs made by the running moat watch.',
    '# TYPE moat_watch_repairs_total counter',
    `moat_watch_repairs_total ${watch.repairs}`,
    '# HELP moat_watch_last_repair_seconds From the first change notice to the end of the last repair.',
    '# TYPE moat_watch_last_repair_seconds gauge',
    `moat_watch_last_repair_seconds ${(last?.latency_ms ?? 0) / 1000}`,
    '# HELP moat_watch_last_repair_timestamp_seconds When the last repair ended.',
    '# TYPE moat_watch_last_repair_timestamp_seconds gauge',
    `moat_watch_last_repair_timestamp_seconds ${seconds(last?.time)}`,
    '# HELP moat_watch_fighting 1 while watch holds back repairs another program keeps undoing.',
    '# TYPE moat_watch_fighting gauge',
    `moat_watch_fighting ${watch.fight === undefined ? 0 : 1}`,
    '# HELP moat_watch_fight_round Rounds of the current fight (each holds repairs twice as long).',
    '# TYPE moat_watch_fight_round gauge',
    `moat_watch_fight_round ${watch.fight?.round ?? 0}`,
    '# HELP moat_watch_fights_ended_total Fights that ended since watch started.',
    '# TYPE moat_watch_fights_ended_total counter',
    `moat_watch_fights_ended_total ${watch.truces}`,
  ];
}

export function renderMetrics(
  history: RunHistory,
  info: { version: string; backend: string },
  extras: { readonly drops?: DropReport; readonly watch?: WatchState } = {},
): string {
  const last: RunRecord | undefined = history.runs.at(-1);
  const success = lastWhere(history, (r) => r.result !== 'failed');
  const lines = [
    '# HELP moat_last_run_timestamp_seconds When the last moat run started.',
    '# TYPE moat_last_run_timestamp_seconds gauge',
    `moat_last_run_timestamp_seconds ${seconds(last?.time)}`,
    '# HELP moat_last_success_timestamp_seconds When the last successful moat run started.',
    '# TYPE moat_last_success_timestamp_seconds gauge',
    `moat_last_success_timestamp_seconds ${seconds(success?.time)}`,
    '# HELP moat_last_run_success 1 if the last run succeeded.',
    '# TYPE moat_last_run_success gauge',
    `moat_last_run_success ${last !== undefined && last.result !== 'failed' ? 1 : 0}`,
    '# HELP moat_run_duration_seconds How long the last run took.',
    '# TYPE moat_run_duration_seconds gauge',
    `moat_run_duration_seconds ${(last?.duration_ms ?? 0) / 1000}`,
    '# HELP moat_drift_detected 1 if the last run found changes made outside moat.',
    '# TYPE moat_drift_detected gauge',
    `moat_drift_detected ${last?.drift === true ? 1 : 0}`,
    '# HELP moat_changes_applied Objects the last run added, changed and destroyed.',
    '# TYPE moat_changes_applied gauge',
    ...(['add', 'change', 'destroy'] as const).map(
      (kind) =>
        `moat_changes_applied{kind="${kind}"} ${last?.result === 'changed' ? last.changes[kind] : 0}`,
    ),
    '# HELP moat_info The moat version and iptables backend.',
    '# TYPE moat_info gauge',
    `moat_info{version="${label(info.version)}",backend="${label(info.backend)}"} 1`,
    ...dropMetrics(extras.drops),
    ...(extras.watch === undefined ? [] : watchMetrics(extras.watch)),
  ];
  return lines.join('\n') + '\n';
}

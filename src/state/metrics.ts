/**
 * A node_exporter textfile with the outcome of moat's runs and what moat's rules dropped, per
 * policy rule. Pure rendering.
 */
import type { DropReport } from '../plan/drops.js';
import type { RunHistory, RunRecord } from './runs.js';
import { lastWhere } from './runs.js';

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

export function renderMetrics(
  history: RunHistory,
  info: { version: string; backend: string },
  drops?: DropReport,
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
    ...dropMetrics(drops),
  ];
  return lines.join('\n') + '\n';
}

/**
 * Writes the node_exporter textfile: the run history, and what a running `moat watch` reports
 * (repairs, fights). Written after every run and after every change of watch's state.
 */
import { renderMetrics } from '../state/metrics.js';
import { readHistory, writeAtomically } from '../state/runs.js';
import { readRunningWatch } from '../state/watch-state.js';
import { TOOL_VERSION } from './version.js';

export async function refreshMetricsFile(
  stateDir: string,
  metricsFile: string,
  backend: string | undefined,
): Promise<void> {
  const [history, watch] = await Promise.all([readHistory(stateDir), readRunningWatch(stateDir)]);
  const metrics = renderMetrics(
    history,
    { version: TOOL_VERSION, backend: backend ?? 'unknown' },
    watch,
  );
  await writeAtomically(metricsFile, metrics);
}

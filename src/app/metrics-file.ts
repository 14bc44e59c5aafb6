/**
 * Writes the node_exporter textfile: the run history, the drop counters of moat's rules (after
 * an apply), and what a running `moat watch` reports (repairs, fights). Written after every run and after every change of watch's state.
 */
import type { DropReport } from '../plan/drops.js';
import { renderMetrics } from '../state/metrics.js';
import { readHistory, recordRun, writeAtomically, type RunRecord } from '../state/runs.js';
import { readRunningWatch } from '../state/watch-state.js';
import type { Context } from './context.js';
import { TOOL_VERSION } from './version.js';

/**
 * Records a run (an apply, a watch repair) and refreshes the metrics file; a failure here is a
 * warning and never fails the run.
 */
export async function rememberRun(
  ctx: Context,
  options: { readonly stateDir: string; readonly metricsFile?: string | undefined },
  record: RunRecord,
  drops?: DropReport,
): Promise<void> {
  try {
    await recordRun(options.stateDir, record);
    if (options.metricsFile !== undefined) {
      await refreshMetricsFile(options.stateDir, options.metricsFile, record.backend, drops);
    }
  } catch (error) {
    ctx.view.warn(`could not record this run in ${options.stateDir}: ${(error as Error).message}`);
  }
}

export async function refreshMetricsFile(
  stateDir: string,
  metricsFile: string,
  backend: string | undefined,
  drops?: DropReport,
): Promise<void> {
  const [history, watch] = await Promise.all([readHistory(stateDir), readRunningWatch(stateDir)]);
  const metrics = renderMetrics(
    history,
    { version: TOOL_VERSION, backend: backend ?? 'unknown' },
    { ...(drops === undefined ? {} : { drops }), ...(watch === undefined ? {} : { watch }) },
  );
  await writeAtomically(metricsFile, metrics);
}

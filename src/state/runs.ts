/**
 * The record of moat's last runs on this host (default /var/lib/moat/runs.json): what `moat
 * status` reports and what a person reads after a cron run went wrong.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export const DEFAULT_STATE_DIR = '/var/lib/moat';
const KEEP = 50;

export type RunResult = 'unchanged' | 'changed' | 'failed';

export interface RunRecord {
  /** When the run started (ISO 8601). */
  readonly time: string;
  readonly duration_ms: number;
  readonly command: string;
  readonly result: RunResult;
  readonly policy_sha256?: string;
  /** The git revision of the policy file's work tree, when it is in one. */
  readonly git_revision?: string;
  readonly changes: { readonly add: number; readonly change: number; readonly destroy: number };
  /** Whether any change put back something changed outside moat. */
  readonly drift: boolean;
  /** What had drifted, when something had: `add-jump ipv4 DOCKER-USER`, `update-set moat-x`. */
  readonly drifted?: readonly string[];
  readonly backend?: string;
  readonly error?: string;
}

export interface RunHistory {
  readonly runs: readonly RunRecord[];
}

export function historyPath(stateDir: string): string {
  return join(stateDir, 'runs.json');
}

export async function readHistory(stateDir: string): Promise<RunHistory> {
  try {
    const parsed = JSON.parse(await readFile(historyPath(stateDir), 'utf8')) as Partial<RunHistory>;
    return { runs: Array.isArray(parsed.runs) ? parsed.runs : [] };
  } catch {
    return { runs: [] };
  }
}

let writes = 0;

/** Writes `text` to `path` atomically: a reader sees the old file or the new one. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  // One temporary name per write: watch's passes and its repair reports write concurrently.
  const temporary = `${path}.tmp-${process.pid}-${++writes}`;
  await writeFile(temporary, text);
  await rename(temporary, path);
}

export async function recordRun(stateDir: string, record: RunRecord): Promise<void> {
  const history = await readHistory(stateDir);
  const runs = [...history.runs, record].slice(-KEEP);
  await writeAtomically(historyPath(stateDir), JSON.stringify({ runs }, null, 2) + '\n');
}

export function lastWhere(
  history: RunHistory,
  test: (run: RunRecord) => boolean,
): RunRecord | undefined {
  return [...history.runs].reverse().find(test);
}

/** What `moat apply` (and each pass of `moat watch`) is told; shared by its two modules. */
import type { HostOptions } from './context.js';

export interface ApplyOptions extends HostOptions {
  /** The policy file (`-`: stdin); absent: the one a saved plan was made from, else firewall.yaml. */
  readonly file?: string;
  readonly lockFile: string;
  readonly lockTimeoutMs: number;
  /** A plan saved by `moat plan --out` (`-`: stdin): apply exactly it, or nothing. */
  readonly planFile?: string;
  readonly autoApprove: boolean;
  readonly quiet: boolean;
  readonly detailedExitcode: boolean;
  /** Where runs are recorded (`--history-dir`). */
  readonly stateDir: string;
  readonly metricsFile?: string;
}

/** The policy file when neither `-f` nor a saved plan names one. */
export const DEFAULT_POLICY_FILE = 'firewall.yaml';

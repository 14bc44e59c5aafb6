/** Load and validate the policy file, printing located diagnostics. */
import { createHash } from 'node:crypto';
import { UserError } from '../core/errors.js';
import { formatDiagnostic } from '../policy/format.js';
import { loadPolicyFile } from '../policy/load.js';
import type { Policy } from '../policy/model.js';
import type { Io } from './io.js';

export interface LoadedPolicy {
  readonly policy: Policy;
  readonly sha256: string;
  /** The file's text, to find where a rule is when one is shown. */
  readonly text: string;
}

export async function loadValidPolicy(file: string, io: Io, color: boolean): Promise<LoadedPolicy> {
  const result = await loadPolicyFile(file);
  for (const d of result.diagnostics) io.err(formatDiagnostic(d, result.text, { color }) + '\n');
  if (result.policy === undefined) {
    const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
    throw new UserError(
      `${file} is not valid (${errors} error${errors === 1 ? '' : 's'}); nothing was changed`,
      'invalid-policy',
    );
  }
  return {
    policy: result.policy,
    sha256: createHash('sha256').update(result.text).digest('hex'),
    text: result.text,
  };
}

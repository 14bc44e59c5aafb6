/**
 * The policy a command works from: a file, standard input (`-f -`) or the text a saved plan
 * carries. Diagnostics go to the view; an invalid policy ends the command with them attached.
 */
import { createHash } from 'node:crypto';
import { InvalidPolicyError } from '../core/errors.js';
import { loadPolicyFile, policyFromBytes, type LoadedPolicyText } from '../policy/load.js';
import type { Policy } from '../policy/model.js';
import { MAX_POLICY_BYTES } from '../policy/parse.js';
import type { Io } from './io.js';
import {
  policyName,
  policyPath,
  STDIN,
  STDIN_NAME,
  type PolicyPath,
  type PolicySource,
} from './policy-path.js';
import type { View } from './view.js';

export interface LoadedPolicy {
  readonly policy: Policy;
  readonly sha256: string;
  /** The file's text, for locating compiled rules back in it. */
  readonly text: string;
  readonly path: PolicyPath;
}

export function policySha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Reads the policy without judging it (`moat validate` reports every diagnostic itself). */
export async function readPolicy(
  io: Pick<Io, 'readStdin'>,
  source: PolicySource,
): Promise<LoadedPolicyText & { readonly path: PolicyPath }> {
  if ('text' in source) {
    const name = policyName(source.path);
    return { ...policyFromBytes(Buffer.from(source.text, 'utf8'), name), path: source.path };
  }
  if (source.file === STDIN) {
    const bytes = await io.readStdin(MAX_POLICY_BYTES);
    return { ...policyFromBytes(bytes, STDIN_NAME), path: STDIN };
  }
  return { ...(await loadPolicyFile(source.file)), path: policyPath(source.file) };
}

/** Reads and checks the policy, showing its diagnostics; an invalid one ends the command. */
export async function loadValidPolicy(
  ctx: { readonly io: Pick<Io, 'readStdin'>; readonly view: View },
  source: PolicySource,
): Promise<LoadedPolicy> {
  const result = await readPolicy(ctx.io, source);
  ctx.view.diagnostics(result.diagnostics, result.text);
  if (result.policy === undefined) {
    const name = policyName('text' in source ? source.path : source.file);
    const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
    throw new InvalidPolicyError(
      `${name} is not valid (${errors} error${errors === 1 ? '' : 's'}); nothing was changed`,
      result.diagnostics,
    );
  }
  return {
    policy: result.policy,
    sha256: policySha256(result.text),
    text: result.text,
    path: result.path,
  };
}

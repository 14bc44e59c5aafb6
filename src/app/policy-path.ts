/**
 * How commands name where a policy comes from: a file, or standard input (`-f -`). Its own
 * small module, so commands can name policies before the policy reader is loaded.
 */
import { resolve } from 'node:path';

/** `-f -`, `--out -`, `moat apply -`: standard input or output. */
export const STDIN = '-';
/** How diagnostics and messages name standard input. */
export const STDIN_NAME = '<stdin>';

/** Where a policy was read from: an absolute path, or `-` for standard input. */
export type PolicyPath = string;

export type PolicySource =
  | { readonly file: string }
  /** The policy text a saved plan carries, named by the path it was made from. */
  | { readonly text: string; readonly path: PolicyPath };

/** The absolute path of a policy file as the user named it, or `-` for standard input. */
export function policyPath(file: string): PolicyPath {
  return file === STDIN ? STDIN : resolve(file);
}

/** How messages and diagnostics name a policy: as the user wrote it, `<stdin>` for `-`. */
export function policyName(file: string): string {
  return file === STDIN ? STDIN_NAME : file;
}

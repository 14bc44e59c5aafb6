/** Read a policy file or bytes from standard input (the adapter around the pure parser). */
import { open } from 'node:fs/promises';
import { UserError } from '../core/errors.js';
import { MAX_POLICY_BYTES, parsePolicy, type PolicyParseResult } from './parse.js';

export async function loadPolicyFile(path: string): Promise<LoadedPolicyText> {
  let bytes: Buffer;
  try {
    const handle = await open(path, 'r');
    try {
      // Read at most one byte past the limit: a huge file, a FIFO or /dev/zero is never slurped.
      const buffer = Buffer.alloc(MAX_POLICY_BYTES + 1);
      let filled = 0;
      while (filled < buffer.length) {
        const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      bytes = buffer.subarray(0, filled);
    } finally {
      await handle.close();
    }
  } catch (error) {
    // Checked by shape: errors from node:fs may come from another realm (jest's VM modules).
    const reason =
      typeof error === 'object' && error !== null && 'code' in error
        ? String(error.code)
        : String(error);
    const why =
      reason === 'ENOENT'
        ? 'no such file'
        : reason === 'EACCES'
          ? 'permission denied'
          : reason === 'EISDIR'
            ? 'it is a directory'
            : reason;
    throw new UserError(`cannot read policy file ${path}: ${why}`, 'policy-unreadable');
  }
  return policyFromBytes(bytes, path);
}

export type LoadedPolicyText = PolicyParseResult & { readonly text: string };

/**
 * Parses what was read from `name` (a file, or `<stdin>`); more than MAX_POLICY_BYTES is refused
 * unparsed, so a reader needs to read at most one byte past the limit.
 */
export function policyFromBytes(bytes: Buffer, name: string): LoadedPolicyText {
  if (bytes.length > MAX_POLICY_BYTES) {
    return {
      text: '',
      diagnostics: [
        {
          file: name,
          line: 1,
          column: 1,
          severity: 'error',
          code: 'too-large',
          message: `the file is larger than ${MAX_POLICY_BYTES / 1024} KiB; a policy file is expected to be small`,
        },
      ],
    };
  }
  const text = bytes.toString('utf8');
  return { ...parsePolicy(text, name), text };
}

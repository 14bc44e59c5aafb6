/** `moat validate`: the policy file alone, no host, no root. Its own module so it loads little. */
import { ExitCode } from '../core/errors.js';
import { formatDiagnostic } from '../policy/format.js';
import { loadPolicyFile } from '../policy/load.js';
import type { Context } from './context.js';

export async function validateCommand(
  ctx: Context,
  options: { file: string; json: boolean },
): Promise<number> {
  const result = await loadPolicyFile(options.file);
  if (options.json) {
    ctx.io.out(
      JSON.stringify(
        { valid: result.policy !== undefined, diagnostics: result.diagnostics },
        null,
        2,
      ) + '\n',
    );
  } else {
    for (const d of result.diagnostics)
      ctx.io.err(formatDiagnostic(d, result.text, { color: ctx.color }) + '\n');
    if (result.policy !== undefined) ctx.io.out(`${options.file} is valid.\n`);
  }
  return result.policy === undefined ? ExitCode.error : ExitCode.ok;
}

/** `moat validate`: the policy file alone, no host, no root. Its own module so it loads little. */
import { ExitCode } from '../core/errors.js';
import type { Context } from './context.js';
import { readPolicy } from './policy-input.js';
import { policyName } from './policy-path.js';

export async function validateCommand(ctx: Context, options: { file: string }): Promise<number> {
  const result = await readPolicy(ctx.io, { file: options.file });
  const valid = result.policy !== undefined;
  ctx.view.result(
    () => {
      ctx.view.diagnostics(result.diagnostics, result.text);
      return valid ? `${policyName(options.file)} is valid.\n` : '';
    },
    () => ({ valid, diagnostics: result.diagnostics }),
  );
  return valid ? ExitCode.ok : ExitCode.error;
}

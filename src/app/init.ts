/** `moat init`: write a policy that reproduces the running containers' exposure today. */
import { writeFile } from 'node:fs/promises';
import { ExitCode, UserError } from '../core/errors.js';
import { resolveDockerEndpoint } from '../docker/endpoint.js';
import { readInventory } from '../docker/inventory.js';
import { initialPolicy } from '../init/generate.js';
import type { Context } from './context.js';

export async function initCommand(
  ctx: Context,
  options: { out?: string; force: boolean },
): Promise<number> {
  const endpoint = resolveDockerEndpoint(ctx.env);
  const text = initialPolicy(await readInventory(endpoint));
  if (options.out === undefined) {
    ctx.io.out(text);
    return ExitCode.ok;
  }
  try {
    await writeFile(options.out, text, { flag: options.force ? 'w' : 'wx' });
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST') {
      throw new UserError(`${options.out} exists; pass --force to overwrite it`, 'exists');
    }
    throw new UserError(`cannot write ${options.out}: ${(error as Error).message}`, 'not-writable');
  }
  ctx.io.out(
    `Wrote ${options.out}. Check it with: moat plan -f ${options.out} (it should show no changes)\n`,
  );
  return ExitCode.ok;
}

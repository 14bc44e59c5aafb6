/**
 * `moat init`: write a policy that reproduces the running containers' exposure today, read from
 * the Docker API or from a snapshot (`--snapshot DIR`).
 */
import { writeFile } from 'node:fs/promises';
import { ExitCode, UserError } from '../core/errors.js';
import { initialPolicy } from '../init/generate.js';
import type { Context } from './context.js';
import { readContainers } from './host-state.js';

export interface InitOptions {
  readonly out?: string;
  readonly force: boolean;
  readonly snapshot?: string;
}

export async function initCommand(ctx: Context, options: InitOptions): Promise<number> {
  const text = initialPolicy(await readContainers(ctx, options.snapshot));
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
  const against = options.snapshot === undefined ? '' : ` --snapshot ${options.snapshot}`;
  ctx.view.note(
    `Wrote ${options.out}. Check it with: moat plan -f ${options.out}${against} (it should show no changes)\n`,
  );
  return ExitCode.ok;
}

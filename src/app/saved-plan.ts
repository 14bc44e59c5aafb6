/**
 * Saved plans: what `moat plan --out FILE` writes and `moat apply FILE` checks. A saved plan
 * carries the policy it was made from (its path, sha256 and text) and moat's version, so
 * `moat apply FILE` needs no `-f`, and a plan made from standard input can be applied from
 * standard input with no file at all (the CI example's sudoers rule relies on that).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { UserError } from '../core/errors.js';
import type { Plan } from '../plan/model.js';
import { planDocument, planFromDocument, type PlanOrigin } from '../plan/render-json.js';
import type { Io } from './io.js';
import type { LoadedPolicy } from './policy-input.js';
import { STDIN, STDIN_NAME } from './policy-path.js';
import { TOOL_VERSION } from './version.js';

/** Plans are a few hundred kB even for large hosts; more on stdin is not a plan. */
const MAX_PLAN_BYTES = 64 * 1024 * 1024;

export interface SavedPlan {
  readonly plan: Plan;
  readonly origin: Partial<PlanOrigin>;
  /** How messages name the plan file: as the user wrote it, `<stdin>` for `-`. */
  readonly name: string;
}

export function savedPlanText(plan: Plan, policy: LoadedPolicy): string {
  const origin: PlanOrigin = {
    policyPath: policy.path,
    policySha256: policy.sha256,
    policyText: policy.text,
    toolVersion: TOOL_VERSION,
  };
  return JSON.stringify(planDocument(plan, origin), null, 2) + '\n';
}

/** Writes a saved plan to `file`, or to stdout for `-`. */
export async function writeSavedPlan(io: Io, file: string, text: string): Promise<void> {
  if (file === STDIN) {
    io.out(text);
    return;
  }
  try {
    await writeFile(file, text);
  } catch (error) {
    throw new UserError(`cannot write ${file}: ${(error as Error).message}`, 'not-writable');
  }
}

async function readPlanText(io: Io, file: string): Promise<string> {
  if (file === STDIN) {
    const bytes = await io.readStdin(MAX_PLAN_BYTES);
    if (bytes.length > MAX_PLAN_BYTES)
      throw new UserError(`${STDIN_NAME}: larger than any moat plan`, 'bad-plan-file');
    return bytes.toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch {
    throw new UserError(`cannot read plan file ${file}`, 'plan-unreadable');
  }
}

/** Reads a saved plan from `file`, or from stdin for `-`. */
export async function readSavedPlan(io: Io, file: string): Promise<SavedPlan> {
  const name = file === STDIN ? STDIN_NAME : file;
  const { plan, origin } = planFromDocument(await readPlanText(io, file), name);
  return { plan, origin, name };
}

/**
 * `moat plan`, and `makePlan`, the one way a plan is made from a policy file and a host (the
 * golden tests call it too). The host is read first and the rest of moat (policy reader,
 * compiler, differ, renderers: most of its code) is loaded while the reads run, so start-up and
 * reading overlap.
 */
import type { Plan } from '../plan/model.js';
import type { Context } from './context.js';
import { readHostState, type HostSource } from './host-state.js';
import type { LoadedPolicy } from './policy-input.js';

export interface PlanSource extends HostSource {
  /** The policy file, or `-` for standard input. */
  readonly file: string;
}

export interface PlanOptions extends PlanSource {
  /** Save the plan for `moat apply` to this file, or to stdout for `-`. */
  readonly out?: string;
  readonly detailedExitcode: boolean;
}

export interface MadePlan {
  readonly plan: Plan;
  readonly policy: LoadedPolicy;
}

export async function makePlan(ctx: Context, source: PlanSource): Promise<MadePlan> {
  // Read the host while the policy is parsed; the policy's own errors are reported first.
  const reading = readHostState(ctx, source);
  reading.catch(() => undefined);
  const [{ loadValidPolicy }, { planFor, withListenerNames }] = await Promise.all([
    import('./policy-input.js'),
    import('./context.js'),
  ]);
  const policy = await loadValidPolicy(ctx, { file: source.file });
  const { live, inventory, system } = await reading;
  const named = await withListenerNames(policy.policy, system ?? {});
  return { plan: planFor(policy.policy, inventory, live, named), policy };
}

/** A word the shell passes through unchanged, quoted when it would not be. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export async function planCommand(ctx: Context, options: PlanOptions): Promise<number> {
  const [made, { changesExit }, model, json, text, saved] = await Promise.all([
    makePlan(ctx, options),
    import('./context.js'),
    import('../plan/model.js'),
    import('../plan/render-json.js'),
    import('../plan/render-text.js'),
    import('./saved-plan.js'),
  ]);
  const { plan, policy } = made;
  if (options.out === '-') {
    // The saved plan is the output: nothing else on stdout.
    await saved.writeSavedPlan(ctx.io, '-', saved.savedPlanText(plan, policy));
  } else {
    ctx.view.result(
      () => text.renderPlanText(plan, { color: ctx.view.color }),
      () => json.planDocument(plan),
    );
    if (options.out !== undefined) {
      await saved.writeSavedPlan(ctx.io, options.out, saved.savedPlanText(plan, policy));
      // The plan records its policy, so this command works from any directory.
      ctx.view.note(
        `\nSaved the plan to ${options.out}; apply exactly it with: moat apply ${shellWord(options.out)}\n`,
      );
    }
  }
  return changesExit(!model.isEmptyPlan(plan), options.detailedExitcode);
}

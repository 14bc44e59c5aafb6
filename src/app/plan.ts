/**
 * `moat plan`, and `makePlan`, the one way a plan is made from a policy file and a host (status
 * and the golden tests call it too). The host is read first and the rest of moat (policy reader,
 * compiler, differ, renderers: most of its code) is loaded while the reads run, so start-up and
 * reading overlap. `moat plan` reads the host once, whole: its cross-check evaluates that World,
 * and the plan is made from a view of it.
 */
import type { DesiredState } from '../compile/model.js';
import { ExitCode } from '../core/errors.js';
import type { HostState } from '../host/read-host.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import type { Plan } from '../plan/model.js';
import type { Context } from './context.js';
import { readHostState, readPlanHost, type HostSource } from './host-state.js';
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
  /** What the plan aims at: the rules (and their policy origins) the host should hold. */
  readonly desired: DesiredState;
  /** The netfilter state the plan was made against (live or a snapshot's). */
  readonly live: LiveNetfilter;
}

export function makePlan(ctx: Context, source: PlanSource): Promise<MadePlan> {
  return planFrom(ctx, source, readHostState(ctx, source));
}

/** The plan of the host state `reading` gives, read while the policy is parsed. */
async function planFrom(
  ctx: Context,
  source: PlanSource,
  reading: Promise<HostState>,
): Promise<MadePlan> {
  // The policy's own errors are reported first.
  reading.catch(() => undefined);
  const [{ loadValidPolicy }, { desiredAndPlan, withListenerNames }] = await Promise.all([
    import('./policy-input.js'),
    import('./context.js'),
  ]);
  const policy = await loadValidPolicy(ctx, { file: source.file });
  const { live, inventory, system } = await reading;
  const named = await withListenerNames(policy.policy, system ?? {});
  return { ...desiredAndPlan(policy.policy, inventory, live, named), policy, live };
}

/** A word the shell passes through unchanged, quoted when it would not be. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export async function planCommand(ctx: Context, options: PlanOptions): Promise<number> {
  // The host is read once: the plan is made from a view of the World its cross-check evaluates.
  const reading = readPlanHost(ctx, options);
  const [made, { changesExit }, model, json, text, saved, check] = await Promise.all([
    planFrom(
      ctx,
      options,
      reading.then((read) => read.state),
    ),
    import('./context.js'),
    import('../plan/model.js'),
    import('../plan/render-json.js'),
    import('../plan/render-text.js'),
    import('./saved-plan.js'),
    import('./cross-check.js'),
  ]);
  const { policy } = made;
  const plan = await check.crossCheckPlan((await reading).world, made.plan);
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
  if (check.contradicted(plan)) {
    ctx.view.warn(
      "the plan's reach is contradicted by the ruleset it leaves (see Contradicted); something outside moat's chains decides those packets",
    );
    return ExitCode.error;
  }
  return changesExit(!model.isEmptyPlan(plan), options.detailedExitcode);
}

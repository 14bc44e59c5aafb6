/**
 * The question `plan` asks: for a published port (or a container's port, or an address) and
 * some classes of sources (host, a CIDR block, anyone, a container), what is the verdict per
 * family on the host as it is and as the plan leaves it. Pure.
 *
 *   const before = world;                          // src/host/world.ts reads it
 *   const after = worldAfterPlan(world, plan);     // src/explain/after-plan.ts
 *   reachBeforeAfter(before, after, { kind: 'container', name: 'ghost', port: 2368, protocol: 'tcp' },
 *                    [{ kind: 'host' }, { kind: 'anyone' }])
 */
import type { Family } from '../policy/model.js';
import type { Explanation, Summary, World } from './model.js';
import { describeSource, explain, type SourceSpec, type TargetSpec } from './query.js';

export interface FamilyVerdicts {
  readonly family: Family;
  readonly before: Summary;
  readonly after: Summary;
}

export interface SourceReach {
  readonly source: SourceSpec;
  /** `host`, `anyone`, `198.51.100.0/24`, `container:api`. */
  readonly label: string;
  readonly families: readonly FamilyVerdicts[];
  /** The full answers, for a trail when a verdict is not what the policy asked for. */
  readonly explanations: { readonly before: Explanation; readonly after: Explanation };
}

/** Verdicts per source class and family, before and after a plan. */
export function reachBeforeAfter(
  before: World,
  after: World,
  target: TargetSpec,
  sources: readonly SourceSpec[],
): SourceReach[] {
  return sources.map((source) => {
    const was = explain(before, source, target);
    const will = explain(after, source, target);
    const families = will.answers.map((answer) => ({
      family: answer.family,
      before: was.answers.find((a) => a.family === answer.family)?.verdict ?? 'unknown',
      after: answer.verdict,
    }));
    return {
      source,
      label: describeSource(source),
      families,
      explanations: { before: was, after: will },
    };
  });
}

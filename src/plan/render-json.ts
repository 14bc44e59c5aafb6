/** The plan as a versioned JSON document (docs/plan-format.md). */
import { UserError } from '../core/errors.js';
import { PLAN_FORMAT_VERSION, type Plan } from './model.js';

export interface PlanDocument {
  readonly format_version: number;
  readonly fingerprint: string;
  readonly summary: Plan['summary'];
  readonly steps: Plan['steps'];
  readonly exposures: Plan['exposures'];
  readonly egress: Plan['egress'];
  readonly glossary: Plan['glossary'];
  readonly warnings: Plan['warnings'];
  readonly digests: Plan['digests'];
  /** Only in saved plan files: what the plan was computed from. */
  readonly policy_path?: string;
  readonly policy_sha256?: string;
  readonly policy_text?: string;
  readonly tool_version?: string;
}

/** What a saved plan was made from: the policy (where, its hash, its text) and moat's version. */
export interface PlanOrigin {
  /** The absolute path of the policy file, or `-` when it was read from standard input. */
  readonly policyPath: string;
  readonly policySha256: string;
  readonly policyText: string;
  readonly toolVersion: string;
}

export function planDocument(plan: Plan, origin?: PlanOrigin): PlanDocument {
  return {
    format_version: plan.formatVersion,
    fingerprint: plan.fingerprint,
    summary: plan.summary,
    steps: plan.steps,
    exposures: plan.exposures,
    egress: plan.egress,
    glossary: plan.glossary,
    warnings: plan.warnings,
    digests: plan.digests,
    ...(origin === undefined
      ? {}
      : {
          policy_path: origin.policyPath,
          policy_sha256: origin.policySha256,
          policy_text: origin.policyText,
          tool_version: origin.toolVersion,
        }),
  };
}

export function renderPlanJson(plan: Plan): string {
  return JSON.stringify(planDocument(plan), null, 2) + '\n';
}

/** Reads a saved plan back; refuses versions it does not know. */
export function planFromDocument(
  text: string,
  file: string,
): { plan: Plan; origin: Partial<PlanOrigin> } {
  let doc: Partial<PlanDocument>;
  try {
    doc = JSON.parse(text) as Partial<PlanDocument>;
  } catch {
    throw new UserError(`${file}: not a moat plan file (not JSON)`, 'bad-plan-file');
  }
  if (doc.format_version !== PLAN_FORMAT_VERSION) {
    throw new UserError(
      `${file}: plan format_version ${String(doc.format_version)} is not one this moat reads (${PLAN_FORMAT_VERSION})`,
      'bad-plan-file',
    );
  }
  if (
    !Array.isArray(doc.steps) ||
    typeof doc.fingerprint !== 'string' ||
    doc.summary === undefined ||
    doc.digests === undefined
  ) {
    throw new UserError(`${file}: not a complete moat plan file`, 'bad-plan-file');
  }
  return {
    plan: {
      formatVersion: PLAN_FORMAT_VERSION,
      fingerprint: doc.fingerprint,
      steps: doc.steps,
      summary: doc.summary,
      exposures: doc.exposures ?? [],
      egress: doc.egress ?? [],
      glossary: doc.glossary ?? { ipsets: {}, addresses: {} },
      warnings: doc.warnings ?? [],
      digests: doc.digests,
    },
    origin: {
      ...(typeof doc.policy_path === 'string' ? { policyPath: doc.policy_path } : {}),
      ...(typeof doc.policy_sha256 === 'string' ? { policySha256: doc.policy_sha256 } : {}),
      ...(typeof doc.policy_text === 'string' ? { policyText: doc.policy_text } : {}),
      ...(typeof doc.tool_version === 'string' ? { toolVersion: doc.tool_version } : {}),
    },
  };
}

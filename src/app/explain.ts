/**
 * `moat explain` and `moat test`: read the host (or a snapshot) whole, optionally put the
 * pending plan's changes into it in memory, and ask the packet-path evaluator.
 */
import { access, readFile } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { compile } from '../compile/compile.js';
import { hostFacts } from '../compile/host-facts.js';
import { ExitCode, UserError } from '../core/errors.js';
import { worldAfterPlan } from '../explain/after-plan.js';
import type { World } from '../explain/model.js';
import { originLookup } from '../explain/origins.js';
import { explain, parseSource, parseTarget } from '../explain/query.js';
import {
  explanationDocument,
  renderExplanationText,
  type OriginLookup,
} from '../explain/render.js';
import { renderTestReport, runTests, testReportDocument } from '../explain/run-tests.js';
import { parseTestsFile } from '../explain/tests-file.js';
import { openLiveHost } from '../host/read-host.js';
import { readWorldFromHost, readWorldFromSnapshot } from '../host/world.js';
import { diff } from '../plan/diff.js';
import type { Family } from '../policy/model.js';
import type { Context, HostOptions } from './context.js';
import { loadValidPolicy } from './policy-input.js';

interface WorldOptions extends HostOptions {
  readonly file: string;
  readonly snapshot?: string;
}

async function readWorld(ctx: Context, options: WorldOptions): Promise<World> {
  if (options.snapshot !== undefined) return readWorldFromSnapshot(options.snapshot);
  const host = await openLiveHost({
    runner: ctx.runner,
    backend: options.backend,
    env: ctx.env,
    ...(ctx.readSystem === undefined ? {} : { readSystem: ctx.readSystem }),
  });
  return readWorldFromHost(host);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The World to evaluate and where moat's rules come from in the policy. With `afterPlan`, the
 * policy is required and its plan is applied in memory; without, it only names policy lines
 * (and is skipped when there is no policy file).
 */
async function prepare(
  ctx: Context,
  options: WorldOptions,
  afterPlan: boolean,
): Promise<{ world: World; origins: OriginLookup | undefined }> {
  const reading = readWorld(ctx, options);
  reading.catch(() => undefined);
  const wantPolicy = afterPlan || (await exists(options.file));
  const loaded = wantPolicy ? await loadValidPolicy(ctx, { file: options.file }) : undefined;
  const world = await reading;
  if (loaded === undefined) return { world, origins: undefined };
  const desired = compile(loaded.policy, world.inventory, hostFacts(world.netfilter));
  const origins = originLookup(desired, options.file, loaded.text);
  if (!afterPlan) return { world, origins };
  return { world: worldAfterPlan(world, diff(desired, world.netfilter)), origins };
}

export interface ExplainCommandOptions extends WorldOptions {
  readonly from: string;
  readonly to: string;
  readonly afterPlan: boolean;
  readonly family?: Family;
}

export async function explainCommand(
  ctx: Context,
  options: ExplainCommandOptions,
): Promise<number> {
  const source = parseSource(options.from);
  const target = parseTarget(options.to);
  const { world, origins } = await prepare(ctx, options, options.afterPlan);
  const explanation = explain(
    world,
    source,
    target,
    options.family === undefined ? {} : { families: [options.family] },
  );
  const when = options.afterPlan ? ' (the ruleset after the pending plan)' : '';
  ctx.view.result(
    () =>
      renderExplanationText(
        {
          ...explanation,
          notes: when === '' ? explanation.notes : [`evaluated on${when}`, ...explanation.notes],
        },
        { color: ctx.view.color, ...(origins === undefined ? {} : { origins }) },
      ),
    () => explanationDocument(explanation, origins),
  );
  return ExitCode.ok;
}

/** `firewall.yaml` → `firewall.tests.yaml`, next to it. */
export function defaultTestsFile(policyFile: string): string {
  const name = basename(policyFile).replace(/\.(ya?ml|json)$/i, '');
  return join(dirname(policyFile), `${name}.tests.yaml`);
}

export interface TestCommandOptions extends WorldOptions {
  readonly tests?: string;
  /** Evaluate the host's ruleset as it is, not after the plan. */
  readonly current: boolean;
}

export async function testCommand(ctx: Context, options: TestCommandOptions): Promise<number> {
  const testsFile = options.tests ?? defaultTestsFile(options.file);
  let text: string;
  try {
    text = await readFile(testsFile, 'utf8');
  } catch {
    throw new UserError(
      `cannot read the tests file ${testsFile} (write reachability assertions there, see docs/explain.md)`,
      'tests-unreadable',
    );
  }
  const parsed = parseTestsFile(text, testsFile);
  ctx.view.diagnostics(parsed.diagnostics, text);
  if (parsed.tests === undefined)
    throw new UserError(`${testsFile} is not valid; no test was run`, 'invalid-tests');
  const { world, origins } = await prepare(ctx, options, !options.current);
  const results = runTests(world, parsed.tests);
  const against = `${options.current ? 'the ruleset as it is' : 'the ruleset after the plan'} on ${options.snapshot === undefined ? 'this host' : `the snapshot ${options.snapshot}`}`;
  ctx.view.result(
    () =>
      renderTestReport(results, {
        file: testsFile,
        against,
        color: ctx.view.color,
        ...(origins === undefined ? {} : { origins }),
      }),
    () => testReportDocument(results, testsFile, origins),
  );
  return results.every((r) => r.passed) ? ExitCode.ok : ExitCode.error;
}

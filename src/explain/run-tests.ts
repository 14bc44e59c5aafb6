/**
 * `moat test`'s core: each reachability assertion evaluated on a World, and a report that
 * names, for each failing test, its first failure with the trail that explains it. Pure.
 */
import { MoatError } from '../core/errors.js';
import type { Explanation, FamilyAnswer, Probe } from './model.js';
import { explain } from './query.js';
import { endpointText, explanationDocument, renderTrail, type OriginLookup } from './render.js';
import type { ReachTest } from './tests-file.js';
import type { World } from './model.js';

export interface TestResult {
  readonly test: ReachTest;
  readonly passed: boolean;
  /** The first failure, in one sentence. */
  readonly failure?: string;
  /** The probe that failed, for its trail. */
  readonly probe?: Probe;
  readonly explanation?: Explanation;
}

const LABEL = { ipv4: 'IPv4', ipv6: 'IPv6' } as const;

function firstFailure(
  test: ReachTest,
  answer: FamilyAnswer,
): { failure: string; probe?: Probe } | undefined {
  if (answer.verdict === test.expect) return undefined;
  const family = LABEL[answer.family];
  if (answer.probes.length === 0)
    return { failure: `${family}: not reachable (${answer.note ?? 'no path'})` };
  const probe = answer.probes.find((p) => p.outcome.verdict !== test.expect) ?? answer.probes[0];
  if (probe === undefined) return { failure: `${family}: ${answer.verdict}` };
  const what = probe.outcome.verdict === 'unknown' ? 'cannot be decided' : probe.outcome.verdict;
  const to = endpointText(probe.to, probe.protocol);
  return {
    failure: `${family}: ${what}: from ${probe.from.label} to ${to}: ${probe.outcome.reason}`,
    probe,
  };
}

export function runTest(world: World, test: ReachTest): TestResult {
  let explanation: Explanation;
  try {
    explanation = explain(
      world,
      test.from,
      test.to,
      test.families === undefined ? {} : { families: test.families },
    );
  } catch (error) {
    if (error instanceof MoatError && error.source === 'user')
      return { test, passed: false, failure: error.message };
    throw error;
  }
  for (const answer of explanation.answers) {
    const failed = firstFailure(test, answer);
    if (failed !== undefined) return { test, passed: false, explanation, ...failed };
  }
  if (explanation.answers.length === 0)
    return { test, passed: false, explanation, failure: 'no address family applies to this test' };
  return { test, passed: true, explanation };
}

export function runTests(world: World, tests: readonly ReachTest[]): TestResult[] {
  return tests.map((t) => runTest(world, t));
}

function title(result: TestResult): string {
  const t = result.test;
  const family = t.families === undefined ? '' : ` over ${LABEL[t.families[0] ?? 'ipv4']}`;
  const claim = `${t.fromText} → ${t.toText} is ${t.expect}${family}`;
  return t.name === undefined ? claim : `${t.name}: ${claim}`;
}

export function renderTestReport(
  results: readonly TestResult[],
  options: { file: string; against: string; origins?: OriginLookup; color?: boolean },
): string {
  const paint = (code: string, text: string): string =>
    options.color === true ? `\u001b[${code}m${text}\u001b[0m` : text;
  const lines = [
    `moat test: ${results.length} test${results.length === 1 ? '' : 's'} of ${options.file} against ${options.against}`,
    '',
  ];
  for (const r of results) {
    const where = `${options.file}:${r.test.line}:${r.test.column}`;
    lines.push(`${r.passed ? paint('32', 'ok  ') : paint('31', 'FAIL')}  ${where}  ${title(r)}`);
    if (r.passed) continue;
    lines.push(`      ${r.failure ?? ''}`);
    if (r.probe !== undefined)
      lines.push(
        ...renderTrail(r.probe.outcome.trail, options.origins ?? (() => undefined), '        '),
      );
    for (const u of r.probe?.outcome.unmodelled ?? [])
      lines.push(
        `        not modelled: ${u.rule === undefined ? '' : `${u.rule.table} ${u.rule.chain} #${u.rule.position}: `}${u.why}`,
      );
  }
  const failed = results.filter((r) => !r.passed).length;
  lines.push('', `${results.length - failed} passed, ${failed} failed.`);
  return `${lines.join('\n')}\n`;
}

export function testReportDocument(
  results: readonly TestResult[],
  file: string,
  origins?: OriginLookup,
): unknown {
  return {
    format_version: 1,
    passed: results.filter((r) => r.passed).length,
    failed: results.filter((r) => !r.passed).length,
    tests: results.map((r) => ({
      file,
      line: r.test.line,
      column: r.test.column,
      ...(r.test.name === undefined ? {} : { name: r.test.name }),
      from: r.test.fromText,
      to: r.test.toText,
      expect: r.test.expect,
      passed: r.passed,
      ...(r.failure === undefined ? {} : { failure: r.failure }),
      ...(r.explanation === undefined
        ? {}
        : { explanation: explanationDocument(r.explanation, origins) }),
    })),
  };
}

/**
 * `firewall.tests.yaml`: reachability assertions kept next to the policy, checked by `moat test`.
 *
 *   version: 1
 *   tests:
 *     - name: the blog's admin port is for the host only     # optional
 *       from: anyone             # host | anyone | ADDRESS | CIDR | container:NAME
 *       to: ghost:2368/tcp       # CONTAINER:PORT[/PROTO] | ADDRESS:PORT[/PROTO] | [IPV6]:PORT[/PROTO]
 *       expect: blocked          # reachable | blocked
 *       family: ipv4             # optional: ipv4 | ipv6 (default: both, where they apply)
 *
 * Text in, tests or located diagnostics out, like the policy. Pure.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { Diagnostic } from '../core/diagnostic.js';
import type { Family } from '../policy/model.js';
import { parseSource, parseTarget, type SourceSpec, type TargetSpec } from './query.js';

export type Expectation = 'reachable' | 'blocked';

export interface ReachTest {
  readonly name?: string;
  readonly from: SourceSpec;
  readonly to: TargetSpec;
  readonly fromText: string;
  readonly toText: string;
  readonly expect: Expectation;
  readonly families?: readonly Family[];
  /** Where the test starts in its file. */
  readonly line: number;
  readonly column: number;
}

export interface TestsParseResult {
  /** Set when there is no error. */
  readonly tests?: readonly ReachTest[];
  readonly diagnostics: readonly Diagnostic[];
}

const TEST_KEYS = new Set(['name', 'from', 'to', 'expect', 'family']);
const TOP_KEYS = new Set(['version', 'tests']);
const MAX_TESTS_BYTES = 1024 * 1024;

export function parseTestsFile(text: string, file: string): TestsParseResult {
  const diagnostics: Diagnostic[] = [];
  const lines = new LineCounter();
  const at = (node: Node | null | undefined): { line: number; column: number } => {
    const pos = lines.linePos(node?.range?.[0] ?? 0);
    return { line: Math.max(1, pos.line), column: Math.max(1, pos.col) };
  };
  const error = (node: Node | null | undefined, code: string, message: string): void => {
    diagnostics.push({ file, ...at(node), severity: 'error', code, message });
  };
  if (text.length > MAX_TESTS_BYTES) {
    error(null, 'too-large', 'the file is larger than 1024 KiB');
    return { diagnostics };
  }
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
    logLevel: 'error',
  });
  for (const e of doc.errors) {
    const pos = lines.linePos(e.pos[0]);
    diagnostics.push({
      file,
      line: pos.line,
      column: pos.col,
      severity: 'error',
      code: 'yaml-syntax',
      message: e.message.replace(/\s+/g, ' ').trim(),
    });
  }
  if (doc.errors.length > 0) return { diagnostics };
  const root = doc.contents;
  if (!isMap(root)) {
    error(
      root,
      'not-a-mapping',
      'the top level must be a mapping: `version: 1` and `tests: [...]`',
    );
    return { diagnostics };
  }
  let testsNode: Node | null = null;
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    const value = pair.value;
    if (!TOP_KEYS.has(key))
      error(pair.key, 'unknown-key', `unknown key "${key}": expected version or tests`);
    else if (key === 'version' && !(isScalar(value) && value.value === 1))
      error(value, 'bad-version', 'unsupported version: this moat reads `version: 1`');
    else if (key === 'tests') testsNode = value;
  }
  if (!isSeq(testsNode)) {
    error(testsNode ?? root, 'no-tests', '`tests` must be a list of tests (from, to, expect)');
    return { diagnostics };
  }
  const tests: ReachTest[] = [];
  for (const item of testsNode.items) {
    const test = parseTest(item as Node | null, error, at);
    if (test !== undefined) tests.push(test);
  }
  diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
  return diagnostics.length > 0 ? { diagnostics } : { tests, diagnostics };
}

function parseTest(
  node: Node | null,
  error: (node: Node | null | undefined, code: string, message: string) => void,
  at: (node: Node | null | undefined) => { line: number; column: number },
): ReachTest | undefined {
  if (!isMap(node)) {
    error(node, 'bad-test', 'a test is a mapping with from, to and expect');
    return undefined;
  }
  const values = new Map<string, Node | null>();
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (!TEST_KEYS.has(key))
      error(
        pair.key as Node,
        'unknown-key',
        `unknown key "${key}": expected name, from, to, expect or family`,
      );
    else values.set(key, pair.value as Node | null);
  }
  const text = (
    key: string,
    required: boolean,
  ): { value: string; node: Node | null } | undefined => {
    const value = values.get(key);
    if (value === undefined) {
      if (required) error(node, 'missing-key', `the test needs \`${key}\``);
      return undefined;
    }
    if (!isScalar(value) || typeof value.value !== 'string' || value.value === '') {
      error(value, 'bad-value', `\`${key}\` must be a non-empty string`);
      return undefined;
    }
    return { value: value.value, node: value };
  };
  const name = text('name', false);
  const from = text('from', true);
  const to = text('to', true);
  const expect = text('expect', true);
  const family = text('family', false);
  let source: SourceSpec | undefined;
  let target: TargetSpec | undefined;
  try {
    if (from !== undefined) source = parseSource(from.value);
  } catch (e) {
    error(from?.node, 'bad-from', e instanceof Error ? e.message : String(e));
  }
  try {
    if (to !== undefined) target = parseTarget(to.value);
  } catch (e) {
    error(to?.node, 'bad-to', e instanceof Error ? e.message : String(e));
  }
  if (expect !== undefined && expect.value !== 'reachable' && expect.value !== 'blocked')
    error(expect.node, 'bad-expect', '`expect` is reachable or blocked');
  if (family !== undefined && family.value !== 'ipv4' && family.value !== 'ipv6')
    error(family.node, 'bad-family', '`family` is ipv4 or ipv6');
  if (
    source === undefined ||
    target === undefined ||
    expect === undefined ||
    from === undefined ||
    to === undefined
  )
    return undefined;
  if (expect.value !== 'reachable' && expect.value !== 'blocked') return undefined;
  const where = at(node);
  return {
    ...(name === undefined ? {} : { name: name.value }),
    from: source,
    to: target,
    fromText: from.value,
    toText: to.value,
    expect: expect.value,
    ...(family === undefined || (family.value !== 'ipv4' && family.value !== 'ipv6')
      ? {}
      : { families: [family.value] }),
    line: where.line,
    column: where.column,
  };
}

/**
 * firewall.yaml text → Policy, or every problem found, each located. Pure: text in, result out.
 * Never throws on any input.
 *
 * Stages: size → YAML (syntax, duplicate keys, multiple documents) → shape (JSON Schema, the
 * validator generated from schemas/) → semantics (addresses, ports, references, names) →
 * normalised Policy.
 *
 * Two readers. `yaml` keeps every node's position, so each diagnostic names a line and column;
 * it is the reference. It is also slow to start (0.2 s cold for a 1,000-container file), so a
 * file is first read with js-yaml (7× faster), and that result is used only when the text has
 * none of the YAML features the two could read differently and the result passes every check
 * without a single diagnostic. Anything else is read again by `yaml`: every diagnostic comes
 * from it. test/policy/property.test.ts compares both paths on thousands of files.
 */
import { CORE_SCHEMA, load as loadQuickly } from 'js-yaml';
import {
  isAlias,
  isScalar,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type YAMLError,
} from 'yaml';
import type { Diagnostic } from '../core/diagnostic.js';
import { show, type PolicyIssue } from './issue.js';
import { Locator } from './locate.js';
import type { Policy } from './model.js';
import { schemaIssue } from './schema-messages.js';
import { schemaErrors } from './schema.js';
import { checkPolicy } from './semantics.js';

export interface PolicyParseResult {
  /** Set if and only if there is no error-severity diagnostic. */
  readonly policy?: Policy;
  readonly diagnostics: readonly Diagnostic[];
}

/** A policy file larger than this is refused before parsing (a hand-written file never is). */
export const MAX_POLICY_BYTES = 1024 * 1024;
/** Alias expansions allowed when building the value: stops "billion laughs" documents. */
const MAX_ALIAS_COUNT = 100;

const YAML_CODES: Partial<Record<YAMLError['code'], string>> = {
  DUPLICATE_KEY: 'duplicate-key',
  MULTIPLE_DOCS: 'multiple-documents',
};

function yamlMessage(error: YAMLError, text: string): string {
  switch (error.code) {
    case 'DUPLICATE_KEY': {
      // yaml points at the key's first character; take the whole key token.
      const rest = text.slice(error.pos[0], error.pos[0] + 200);
      const key =
        /^("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^:,\]}\n]*)/.exec(rest)?.[1]?.trim() ?? rest;
      return `duplicate key ${show(key)}: each key may appear once in a mapping`;
    }
    case 'MULTIPLE_DOCS':
      return 'the file holds more than one YAML document (a second `---`); a policy is one document';
    default:
      // yaml reports its own stack exhaustion as an error at the innermost node.
      if (/call stack/i.test(error.message)) return 'the file is nested too deeply to read';
      return error.message.replace(/\s+/g, ' ').trim();
  }
}

function sortByPosition(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics
    .map((d, i) => ({ d, i }))
    .sort((a, b) => a.d.line - b.d.line || a.d.column - b.d.column || a.i - b.i)
    .map(({ d }) => d);
}

function firstAlias(doc: Document): number {
  let offset = 0;
  visit(doc, {
    Alias(_key, node) {
      offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return offset;
}

function describeTop(doc: Document): string {
  const node = doc.contents;
  if (node === null) return 'nothing';
  if (isAlias(node)) return 'an alias';
  const value: unknown = node.toJSON();
  return Array.isArray(value) ? 'a list' : show(value);
}

class Collector {
  readonly diagnostics: Diagnostic[] = [];
  constructor(private readonly file: string) {}

  add(
    position: { line: number; column: number },
    severity: Diagnostic['severity'],
    code: string,
    message: string,
  ): void {
    const seen = this.diagnostics.some(
      (d) => d.line === position.line && d.column === position.column && d.message === message,
    );
    if (!seen) this.diagnostics.push({ file: this.file, ...position, severity, code, message });
  }

  get hasErrors(): boolean {
    return this.diagnostics.some((d) => d.severity === 'error');
  }

  result(policy?: Policy): PolicyParseResult {
    const diagnostics = sortByPosition(this.diagnostics);
    return policy === undefined || this.hasErrors ? { diagnostics } : { policy, diagnostics };
  }
}

const START = { line: 1, column: 1 };

/** By name: the engine may raise it in another realm (jest's VM modules). */
function isStackOverflow(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === 'RangeError'
  );
}

/**
 * Text where js-yaml and `yaml` could disagree, or where only `yaml`'s limits and messages
 * hold: directives (`%YAML 1.1` changes what scalars mean) and a byte-order mark (which hides
 * one from a line-start match), explicit and collection keys, keys that read as null (`~:`,
 * `null:`, an empty key), tags, anchors and aliases (js-yaml shares the aliased object: no
 * expansion limit), a carriage return that ends a line alone, and `0b…` (a number to js-yaml,
 * a string in YAML 1.2). Matching more than these only costs time.
 */
const NEEDS_REFERENCE_READER = [
  /^%/m,
  /\uFEFF/,
  /(?:^|[\s,[{])\?(?:[ \t]|$)/m,
  /[\]}][ \t]*:(?:[ \t]|$)/m,
  /(?:^|[\s,[{])(?:~|null|Null|NULL)?[ \t]*:(?:[ \t]|$)/m,
  /(?:^|[\s,[{])!/m,
  /(?:^|[\s,[{])[&*][^\s,[\]{}]/m,
  /\r(?!\n)/,
  /0b[01]/,
];

/**
 * The policy, when js-yaml reads the text to a value that passes every check silently;
 * undefined whenever the reference reader must look (exported for the tests comparing both).
 */
export function parsePolicyQuickly(text: string): Policy | undefined {
  if (text.length > MAX_POLICY_BYTES) return undefined;
  if (NEEDS_REFERENCE_READER.some((pattern) => pattern.test(text))) return undefined;
  try {
    const value = loadQuickly(text, { schema: CORE_SCHEMA });
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const root = value as Record<string, unknown>;
    if (root['version'] !== 1 || schemaErrors(root).length > 0) return undefined;
    const checked = checkPolicy(root);
    return checked.issues.length === 0 ? checked.policy : undefined;
  } catch {
    return undefined; // syntax, duplicate keys, several documents, nesting: `yaml` says where
  }
}

export function parsePolicy(text: string, file: string): PolicyParseResult {
  const policy = parsePolicyQuickly(text);
  return policy === undefined ? parsePolicyLocated(text, file) : { policy, diagnostics: [] };
}

/** The reference path: `yaml` with positions; every diagnostic of a policy comes from here. */
export function parsePolicyLocated(text: string, file: string): PolicyParseResult {
  const out = new Collector(file);
  try {
    return parseInto(text, out);
  } catch (error) {
    // Last resort for inputs no check foresaw (e.g. nesting deep enough to exhaust the stack).
    const message = isStackOverflow(error)
      ? 'the file is nested too deeply to read'
      : `the file could not be read as a policy: ${error instanceof Error ? error.message : String(error)}`;
    out.add(START, 'error', 'unreadable', message);
    return out.result();
  }
}

function parseInto(text: string, out: Collector): PolicyParseResult {
  // Characters, not bytes: the byte limit is applied by the file loader; this bounds the work.
  if (text.length > MAX_POLICY_BYTES) {
    out.add(
      START,
      'error',
      'too-large',
      `the file is larger than ${MAX_POLICY_BYTES / 1024} KiB; a policy file is expected to be small`,
    );
    return out.result();
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
    // yaml would otherwise print process warnings (e.g. for collection keys) to stderr.
    logLevel: 'error',
  });
  const locator = new Locator(doc, lines);
  for (const error of doc.errors) {
    out.add(
      locator.at(error.pos[0]),
      'error',
      YAML_CODES[error.code] ?? 'yaml-syntax',
      yamlMessage(error, text),
    );
  }
  for (const warning of doc.warnings) {
    out.add(locator.at(warning.pos[0]), 'warning', 'yaml', yamlMessage(warning, text));
  }
  // A syntax error leaves a tree that may not be what was meant; duplicate keys do not.
  if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) return out.result();

  if (doc.contents === null) {
    const what = text.trim() === '' ? 'the file is empty' : 'the file holds only comments';
    out.add(START, 'error', 'empty', `${what}; a policy starts with \`version: 1\``);
    return out.result();
  }
  // A mapping or list used as a key has no place in a policy (and JS objects cannot hold it).
  const complexKeys: number[] = [];
  visit(doc, {
    Pair(_key, pair) {
      if (pair.key !== null && !isScalar(pair.key)) {
        const at = (pair.key as { range?: [number, number, number] }).range?.[0] ?? 0;
        complexKeys.push(at);
        out.add(
          locator.at(at),
          'error',
          'bad-key',
          'a key must be a plain name, not a list or a mapping',
        );
      }
    },
  });
  if (complexKeys.length > 0) return out.result();
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    if (isStackOverflow(error)) throw error;
    out.add(
      locator.at(firstAlias(doc)),
      'error',
      'alias-limit',
      `aliases expand too much (more than ${MAX_ALIAS_COUNT} expansions); write the values out`,
    );
    return out.result();
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    out.add(
      locator.at(doc.contents.range[0]),
      'error',
      'not-a-mapping',
      `the top level must be a mapping (\`version: 1\`, \`containers: …\`), found ${describeTop(doc)}`,
    );
    return out.result();
  }
  const root = value as Record<string, unknown>;
  const report = (issue: PolicyIssue): void => {
    out.add(locator.locate(issue.path, issue.anchor), issue.severity, issue.code, issue.message);
  };

  // Another version is another language: its other keys would only add noise.
  const version = root['version'];
  if (version !== undefined && version !== 1) {
    report({
      path: ['version'],
      anchor: 'value',
      severity: 'error',
      code: 'bad-version',
      message: `unsupported policy version ${show(version)}: this moat reads \`version: 1\``,
    });
    return out.result();
  }
  for (const error of schemaErrors(root)) {
    const issue = schemaIssue(error);
    if (issue !== undefined) report(issue);
  }
  const checked = checkPolicy(root);
  for (const issue of checked.issues) report(issue);
  return out.result(checked.policy);
}

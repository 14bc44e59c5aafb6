/**
 * Parse iptables-save / ip6tables-save output (both backends, all tables), or the `iptables -S`
 * listing of one table, into a LiveRuleset. Pure.
 *
 * Other programs' rules are kept cheaply: a rule is never tokenised beyond finding a
 * `moat:<id>` comment and its `-j`/`-g` target, so a host with tens of thousands of
 * kube-proxy or fail2ban rules parses in a few milliseconds.
 */
import { outputLines } from './lines.js';
import { MoatError } from '../core/errors.js';
import { moatIdOf } from '../core/ownership.js';
import type { Family } from '../policy/model.js';
import type { LiveChain, LiveRule, LiveRuleset, LiveTable } from './model.js';

/** Save output moat cannot trust: a malformed or truncated line, or a table iptables cannot show. */
export class SaveParseError extends MoatError {
  /** 1-based line of the offending input, when one line is to blame. */
  readonly line: number | undefined;
  /** The table iptables reported as incompatible, when that is the problem. */
  readonly table: string | undefined;

  constructor(message: string, details: { line?: number; table?: string } = {}) {
    super(message, { code: 'save-parse' });
    this.line = details.line;
    this.table = details.table;
  }
}

export interface ParsedSave {
  readonly ruleset: LiveRuleset;
  /**
   * Notices iptables printed that do not stop parsing, verbatim without the `# `:
   * `Warning: iptables-legacy tables present, …` and
   * `Table `filter' contains incompatible base-chains, …` (chains only nft can list).
   */
  readonly warnings: readonly string[];
}

// nft-backed iptables-save prints this instead of a table it cannot express as iptables rules.
const INCOMPATIBLE = /^# Table `([^']*)' is incompatible/;
const WARNING = /^# (Warning: .*|Table `[^']*' contains incompatible .*)$/;
const COUNTERS = /^\[\d+:\d+\] /;
const CHAIN_LINE = /^:(\S+) (\S+)(?: \[\d+:\d+\])?$/;
const TABLE_NAME = /^[a-z_][a-z0-9_]*$/;

interface ChainBuilder {
  readonly name: string;
  readonly policy: string | undefined;
  readonly rules: LiveRule[];
}

function show(line: string): string {
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/** Which program's output is parsed, for messages. */
type Source = 'iptables-save' | 'iptables -S';
const SAVE: Source = 'iptables-save';
const LISTING: Source = 'iptables -S';

function lineError(source: Source, lineNo: number, line: string, why: string): SaveParseError {
  return new SaveParseError(`${source} output, line ${lineNo}: ${why}: ${show(line)}`, {
    line: lineNo,
  });
}

/** The table iptables-nft cannot express as iptables rules (it was written with `nft`). */
export function incompatibleTableError(
  family: Family,
  table: string,
  detail: string,
  line?: number,
): SaveParseError {
  return new SaveParseError(
    `iptables cannot show the ${family} ${table} table: it holds rules written with the nft ` +
      `tool that iptables-nft cannot express (${detail}). moat will not ` +
      `plan against a table it cannot read; inspect it with \`nft list table ` +
      `${family === 'ipv4' ? 'ip' : 'ip6'} ${table}\`.`,
    line === undefined ? { table } : { line, table },
  );
}

/**
 * The first `-j X` / `-g X` of a rule spec outside quotes; `null` when a quote is left open.
 * iptables-save prints a comment made only of [A-Za-z0-9_-] unquoted, so `--comment -j` is a
 * comment, not a target.
 */
function findTarget(spec: string): string | undefined | null {
  let quoted = false;
  let target: string | undefined;
  for (let i = 0; i < spec.length; i++) {
    const c = spec.charCodeAt(i);
    if (quoted) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) quoted = false;
      continue;
    }
    if (c === 0x22) {
      quoted = true;
      continue;
    }
    if (
      target === undefined &&
      c === 0x2d /* - */ &&
      (i === 0 || spec.charCodeAt(i - 1) === 0x20) &&
      (spec.charCodeAt(i + 1) === 0x6a /* j */ || spec.charCodeAt(i + 1) === 0x67) /* g */ &&
      spec.charCodeAt(i + 2) === 0x20 &&
      !spec.endsWith('--comment ', i)
    ) {
      const end = spec.indexOf(' ', i + 3);
      target = end < 0 ? spec.slice(i + 3) : spec.slice(i + 3, end);
      // Nothing after the target can open a quote that matters unless the spec has one.
      if (!spec.includes('"', i)) return target;
    }
  }
  return quoted ? null : target;
}

/** A `-A CHAIN spec` line (counters already removed) appended to its chain. */
function addRule(
  source: Source,
  chains: Map<string, ChainBuilder>,
  lineNo: number,
  line: string,
): void {
  if (!line.startsWith('-A ')) throw lineError(source, lineNo, line, 'expected `-A CHAIN ...`');
  const space = line.indexOf(' ', 3);
  const chainName = space < 0 ? line.slice(3) : line.slice(3, space);
  const spec = space < 0 ? '' : line.slice(space + 1);
  const chain = chains.get(chainName);
  if (chain === undefined) {
    throw lineError(
      source,
      lineNo,
      line,
      `rule for chain ${chainName || '(none)'} that was not declared`,
    );
  }
  const target = findTarget(spec);
  if (target === null) throw lineError(source, lineNo, line, 'unterminated quote');
  const moatId = moatIdOf(spec);
  chain.rules.push(
    moatId === undefined
      ? target === undefined
        ? { spec }
        : { spec, target }
      : target === undefined
        ? { spec, moatId }
        : { spec, moatId, target },
  );
}

/** Declares a chain; `policy` undefined for a user chain. */
function declareChain(
  source: Source,
  chains: Map<string, ChainBuilder>,
  lineNo: number,
  line: string,
  name: string,
  policy: string | undefined,
): void {
  if (chains.has(name)) throw lineError(source, lineNo, line, `chain ${name} declared twice`);
  chains.set(name, { name, policy, rules: [] });
}

/**
 * A `# …` line: an incompatible table stops parsing; a notice is kept in `warnings`. Other
 * comments (`# Generated by …`) are ignored.
 */
function commentLine(family: Family, lineNo: number, line: string, warnings: string[]): void {
  const incompatible = INCOMPATIBLE.exec(line);
  if (incompatible !== null) {
    throw incompatibleTableError(
      family,
      incompatible[1] as string,
      `line ${lineNo}: ${show(line)}`,
      lineNo,
    );
  }
  const warning = WARNING.exec(line);
  if (warning !== null) warnings.push(warning[1] as string);
}

function freezeTable(name: string, chains: Map<string, ChainBuilder>): LiveTable {
  const out = new Map<string, LiveChain>();
  for (const [chainName, chain] of chains) {
    out.set(
      chainName,
      chain.policy === undefined
        ? { name: chainName, rules: chain.rules }
        : { name: chainName, policy: chain.policy, rules: chain.rules },
    );
  }
  return { name, chains: out };
}

/** Parses the save output and returns the notices iptables printed alongside the rules. */
export function parseSaveDetailed(text: string, family: Family): ParsedSave {
  const tables = new Map<string, LiveTable>();
  const warnings: string[] = [];
  let table: { name: string; chains: Map<string, ChainBuilder>; line: number } | undefined;

  const lines = outputLines(text);

  for (let i = 0; i < lines.length; i++) {
    let line = lines[i] as string;
    const lineNo = i + 1;
    const first = line.charCodeAt(0);

    if (first === 0x2d /* - */ || first === 0x5b /* [ */) {
      if (first === 0x5b) {
        const counters = COUNTERS.exec(line);
        if (counters === null) throw lineError(SAVE, lineNo, line, 'bad packet/byte counters');
        line = line.slice(counters[0].length);
      }
      if (!line.startsWith('-A ')) throw lineError(SAVE, lineNo, line, 'expected `-A CHAIN ...`');
      if (table === undefined) {
        throw lineError(SAVE, lineNo, line, 'rule outside a table (no `*table`)');
      }
      addRule(SAVE, table.chains, lineNo, line);
      continue;
    }

    if (first === 0x3a /* : */) {
      if (table === undefined) {
        throw lineError(SAVE, lineNo, line, 'chain outside a table (no `*table`)');
      }
      const m = CHAIN_LINE.exec(line);
      if (m === null) {
        throw lineError(SAVE, lineNo, line, 'expected `:CHAIN POLICY [packets:bytes]`');
      }
      const policy = m[2] as string;
      declareChain(
        SAVE,
        table.chains,
        lineNo,
        line,
        m[1] as string,
        policy === '-' ? undefined : policy,
      );
      continue;
    }

    if (first === 0x23 /* # */) {
      commentLine(family, lineNo, line, warnings);
      continue;
    }

    if (first === 0x2a /* * */) {
      if (table !== undefined) {
        throw lineError(
          SAVE,
          lineNo,
          line,
          `table ${table.name} (line ${table.line}) has no COMMIT`,
        );
      }
      const name = line.slice(1);
      if (!TABLE_NAME.test(name)) throw lineError(SAVE, lineNo, line, 'bad table name');
      if (tables.has(name)) throw lineError(SAVE, lineNo, line, `table ${name} appears twice`);
      table = { name, chains: new Map(), line: lineNo };
      continue;
    }

    if (line === 'COMMIT') {
      if (table === undefined) throw lineError(SAVE, lineNo, line, 'COMMIT outside a table');
      tables.set(table.name, freezeTable(table.name, table.chains));
      table = undefined;
      continue;
    }

    if (line.trim() === '') continue;
    throw lineError(SAVE, lineNo, line, 'unrecognised line');
  }

  if (table !== undefined) {
    throw new SaveParseError(
      `iptables-save output ends inside table ${table.name} (started line ${table.line}) ` +
        `without COMMIT: the output is truncated`,
      { line: lines.length },
    );
  }
  return { ruleset: { family, tables }, warnings };
}

const POLICY_LINE = /^-P (\S+) (\S+)$/;
const NEW_CHAIN_LINE = /^-N (\S+)$/;

/**
 * Parses the `iptables -t TABLE -S [CHAIN]` listing of one table: `-P CHAIN POLICY` for a
 * built-in chain, `-N CHAIN` for a user chain, then the same `-A CHAIN spec` lines as
 * iptables-save prints (same order, same quoting), so the table equals what parseSave gives
 * for that table's save output. `-S` has no `*table`/`COMMIT` framing, so truncated output is
 * not detectable here: the caller checks the exit status. With `only`, other chains are
 * skipped without looking at their rules. Fed piece by piece as the program prints, so parsing
 * overlaps the listing.
 */
export class ListingParser {
  private readonly chains = new Map<string, ChainBuilder>();
  private readonly warnings: string[] = [];
  private lineNo = 0;
  /** The start of a line whose end has not arrived yet. */
  private rest = '';

  constructor(
    private readonly family: Family,
    private readonly table: string,
    private readonly only?: ReadonlySet<string>,
  ) {
    if (!TABLE_NAME.test(table)) throw new SaveParseError(`bad table name: ${table}`);
  }

  /** Parses the whole lines in `chunk`; a line cut at its end waits for the next chunk. */
  push(chunk: string): void {
    const text = this.rest + chunk;
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      this.line(text.slice(start, end));
      start = end + 1;
    }
    this.rest = text.slice(start);
  }

  /** The table, once all the output has been pushed. */
  end(): ParsedSave {
    if (this.rest !== '') this.line(this.rest);
    this.rest = '';
    const tables = new Map<string, LiveTable>([[this.table, freezeTable(this.table, this.chains)]]);
    return { ruleset: { family: this.family, tables }, warnings: this.warnings };
  }

  private line(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const lineNo = ++this.lineNo;
    const { chains, only } = this;
    if (line.startsWith('-A ')) {
      if (only !== undefined) {
        const space = line.indexOf(' ', 3);
        if (!only.has(space < 0 ? line.slice(3) : line.slice(3, space))) return;
      }
      addRule(LISTING, chains, lineNo, line);
      return;
    }
    if (line.startsWith('-P ')) {
      const m = POLICY_LINE.exec(line);
      if (m === null) throw lineError(LISTING, lineNo, line, 'expected `-P CHAIN POLICY`');
      const name = m[1] as string;
      if (only === undefined || only.has(name)) {
        declareChain(LISTING, chains, lineNo, line, name, m[2]);
      }
      return;
    }
    if (line.startsWith('-N ')) {
      const m = NEW_CHAIN_LINE.exec(line);
      if (m === null) throw lineError(LISTING, lineNo, line, 'expected `-N CHAIN`');
      const name = m[1] as string;
      if (only === undefined || only.has(name)) {
        declareChain(LISTING, chains, lineNo, line, name, undefined);
      }
      return;
    }
    if (line.startsWith('#')) {
      commentLine(this.family, lineNo, line, this.warnings);
      return;
    }
    if (line.trim() === '') return;
    throw lineError(LISTING, lineNo, line, 'unrecognised line');
  }
}

/** parseListing's result with the notices found; see ListingParser. */
export function parseListingDetailed(
  text: string,
  family: Family,
  table: string,
  only?: ReadonlySet<string>,
): ParsedSave {
  const parser = new ListingParser(family, table, only);
  parser.push(text);
  return parser.end();
}

/**
 * Parses `iptables -t TABLE -S` output (only the chains named in `only`, when given); throws
 * SaveParseError on anything malformed.
 */
export function parseListing(
  text: string,
  family: Family,
  table = 'filter',
  only?: ReadonlySet<string>,
): LiveRuleset {
  return parseListingDetailed(text, family, table, only).ruleset;
}

/** Parses iptables-save / ip6tables-save output; throws SaveParseError on anything malformed. */
export function parseSave(text: string, family: Family): LiveRuleset {
  return parseSaveDetailed(text, family).ruleset;
}

/** The notices (legacy tables present, nft-only base chains) in save output, without parsing it. */
export function saveWarnings(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('# ')) continue;
    const m = WARNING.exec(line.endsWith('\r') ? line.slice(0, -1) : line);
    if (m !== null) out.push(m[1] as string);
  }
  return out;
}

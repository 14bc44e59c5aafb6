/**
 * One rule's spec (`-s 10.0.0.0/8 -p tcp -m tcp --dport 80 -j ACCEPT`) → its matches and its
 * target, each option with its negation and values. Pure.
 *
 * parse-save keeps other programs' rules as text, cheaply; this is the structured reading the
 * packet-path evaluator needs, done only for the rules a packet meets. It understands the form
 * iptables-save prints (`! --opt value`, values quoted with `"` and `\` escapes) and the form moat
 * writes (options of the protocol's implicit module without `-m`, `-m comment` first).
 */

/** `--dport 80`, `! -s 10.0.0.0/8`, `--match-set NAME src`, `--syn`. */
export interface RuleOption {
  /** As written: `-s`, `--dport`. */
  readonly name: string;
  readonly negated: boolean;
  readonly values: readonly string[];
}

/** A `-m MODULE` (or the protocol's implicit module) with its options, in order. */
export interface RuleMatch {
  readonly module: string;
  /** True for `--dport` written without `-m tcp` (the module `-p tcp` loads implicitly). */
  readonly implicit: boolean;
  readonly options: readonly RuleOption[];
}

export interface RuleTarget {
  readonly kind: 'jump' | 'goto';
  readonly name: string;
  readonly options: readonly RuleOption[];
}

export interface ParsedRule {
  /** `-s`, `-d`, `-p`, `-i`, `-o`, `-f` with their long names normalised to these. */
  readonly basic: readonly RuleOption[];
  readonly matches: readonly RuleMatch[];
  readonly target?: RuleTarget;
}

export class RuleParseError extends Error {}

interface Token {
  readonly text: string;
  /** Quoted tokens are always values, whatever they start with. */
  readonly quoted: boolean;
}

/** Splits a spec on spaces, honouring `"…"` with `\` escapes as iptables-save writes them. */
export function tokenizeSpec(spec: string): Token[] {
  // Most rules quote nothing: plain words.
  if (!spec.includes('"')) {
    return spec
      .split(' ')
      .filter((w) => w !== '')
      .map((text) => ({ text, quoted: false }));
  }
  const tokens: Token[] = [];
  let i = 0;
  while (i < spec.length) {
    while (spec[i] === ' ') i++;
    if (i >= spec.length) break;
    let text = '';
    let quoted = false;
    while (i < spec.length && spec[i] !== ' ') {
      if (spec[i] === '"') {
        quoted = true;
        i++;
        while (i < spec.length && spec[i] !== '"') {
          if (spec[i] === '\\' && i + 1 < spec.length) i++;
          text += spec.charAt(i);
          i++;
        }
        if (i >= spec.length) throw new RuleParseError(`unterminated quote in: ${spec}`);
        i++;
        continue;
      }
      text += spec.charAt(i);
      i++;
    }
    tokens.push({ text, quoted });
  }
  return tokens;
}

const BASIC: Readonly<Record<string, string>> = {
  '-s': '-s',
  '--source': '-s',
  '--src': '-s',
  '-d': '-d',
  '--destination': '-d',
  '--dst': '-d',
  '-p': '-p',
  '--protocol': '-p',
  '-i': '-i',
  '--in-interface': '-i',
  '-o': '-o',
  '--out-interface': '-o',
  '-f': '-f',
  '--fragment': '-f',
};
/** Long spellings that only mean a basic option before the first module. */
const LONG_BASIC = new Set(Object.keys(BASIC).filter((k) => k.startsWith('--')));
/** Options that take no value. */
const FLAG_ONLY = new Set(['-f', '-4', '-6', '--ipv4', '--ipv6']);
/**
 * Options whose one value is free text: iptables-save leaves a value of only [A-Za-z0-9_-]
 * unquoted, so `--comment -j` is a comment, not a target.
 */
/**
 * The protocol modules' own options: written after another module (`-m comment --comment x
 * -p tcp --dport 80`), iptables still gives them to the protocol's module.
 */
const PROTOCOL_OPTIONS = new Set([
  '--dport',
  '--sport',
  '--destination-port',
  '--source-port',
  '--syn',
  '--tcp-flags',
  '--tcp-option',
  '--icmp-type',
  '--icmpv6-type',
]);
const PORT_MODULES = new Set(['tcp', 'udp', 'sctp', 'dccp', 'udplite', 'icmp', 'icmp6', 'icmpv6']);
const FREE_TEXT = new Set([
  '--comment',
  '--log-prefix',
  '--nflog-prefix',
  '--string',
  '--hex-string',
]);

function isOptionToken(token: Token): boolean {
  return !token.quoted && token.text.startsWith('-') && token.text.length > 1;
}

interface MatchBuilder {
  module: string;
  implicit: boolean;
  options: RuleOption[];
}

/** Parses one rule spec; throws RuleParseError on a shape iptables would not print. */
export function parseRuleSpec(spec: string): ParsedRule {
  const tokens = tokenizeSpec(spec);
  const basic: RuleOption[] = [];
  const matches: MatchBuilder[] = [];
  let target: { kind: 'jump' | 'goto'; name: string; options: RuleOption[] } | undefined;
  let current: MatchBuilder | undefined;
  let negated = false;
  let protocol: string | undefined;

  const values = (from: number): string[] => {
    const out: string[] = [];
    for (let j = from; j < tokens.length; j++) {
      const t = tokens[j] as Token;
      if (isOptionToken(t) || (!t.quoted && t.text === '!')) break;
      out.push(t.text);
    }
    return out;
  };

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    const text = token.text;
    if (!token.quoted && text === '!') {
      if (negated) throw new RuleParseError(`"! !" in: ${spec}`);
      negated = true;
      continue;
    }
    if (!isOptionToken(token)) throw new RuleParseError(`unexpected "${text}" in: ${spec}`);
    if (text === '-m' || text === '--match') {
      const name = tokens[i + 1];
      if (name === undefined || negated) throw new RuleParseError(`bad -m in: ${spec}`);
      current = { module: name.text, implicit: false, options: [] };
      matches.push(current);
      i++;
      continue;
    }
    if (text === '-j' || text === '--jump' || text === '-g' || text === '--goto') {
      const name = tokens[i + 1];
      if (name === undefined || negated || target !== undefined)
        throw new RuleParseError(`bad target in: ${spec}`);
      target = {
        kind: text === '-g' || text === '--goto' ? 'goto' : 'jump',
        name: name.text,
        options: [],
      };
      current = undefined;
      i++;
      continue;
    }
    const basicName = BASIC[text];
    const isBasic =
      basicName !== undefined &&
      (!LONG_BASIC.has(text) || (matches.length === 0 && target === undefined));
    if (isBasic) {
      const vals = FLAG_ONLY.has(basicName) ? [] : values(i + 1);
      if (!FLAG_ONLY.has(basicName) && vals.length !== 1)
        throw new RuleParseError(`${text} needs one value in: ${spec}`);
      basic.push({ name: basicName, negated, values: vals });
      if (basicName === '-p') protocol = vals[0];
      negated = false;
      i += vals.length;
      continue;
    }
    if (FLAG_ONLY.has(text)) {
      negated = false;
      continue;
    }
    const next = tokens[i + 1];
    const vals = FREE_TEXT.has(text) && next !== undefined ? [next.text] : values(i + 1);
    const option: RuleOption = { name: text, negated, values: vals };
    negated = false;
    i += vals.length;
    if (target !== undefined) {
      target.options.push(option);
      continue;
    }
    let owner = current;
    if (owner === undefined || (PROTOCOL_OPTIONS.has(text) && !PORT_MODULES.has(owner.module))) {
      // `-p tcp --dport 80`: the protocol's module, loaded without -m.
      if (protocol === undefined)
        throw new RuleParseError(`option ${text} outside a module in: ${spec}`);
      const implicit = matches.find((m) => m.implicit && m.module === protocol);
      owner = implicit ?? { module: protocol, implicit: true, options: [] };
      if (implicit === undefined) matches.push(owner);
      if (current === undefined) current = owner;
    }
    owner.options.push(option);
  }
  if (negated) throw new RuleParseError(`dangling "!" in: ${spec}`);
  return {
    basic,
    matches,
    ...(target === undefined ? {} : { target }),
  };
}

/** The first option of a match or target with this name. */
export function optionOf(
  options: readonly RuleOption[],
  ...names: readonly string[]
): RuleOption | undefined {
  return options.find((o) => names.includes(o.name));
}

/**
 * The kernel's packet and byte counters of moat's rules, from `iptables -S -v` (which prints
 * `-c PACKETS BYTES` inside each rule) or `iptables-save -c` (`[PACKETS:BYTES] -A …`). Only
 * rules carrying a `moat:<id>` comment are kept: the counters are looked up by id. Pure.
 */
import { moatIdOf } from '../core/ownership.js';
import { outputLines } from './lines.js';
import { SaveParseError } from './parse-save.js';

/** What the kernel counted for one of moat's rules. */
export interface RuleCounters {
  readonly chain: string;
  readonly id: string;
  /** The `-j`/`-g` target: `DROP`, `RETURN`, `NFLOG`, a chain. */
  readonly target?: string;
  readonly packets: number;
  readonly bytes: number;
}

const SAVE_COUNTERS = /^\[(\d+):(\d+)\] (-A .*)$/;
const WORD = /"(?:[^"\\]|\\.)*"|\S+/g;
const DIGITS = /^\d+$/;

function chainOf(rule: string): string {
  const end = rule.indexOf(' ', 3);
  return end < 0 ? rule.slice(3) : rule.slice(3, end);
}

/** The first `-j X` / `-g X` outside quotes. */
function targetOf(words: readonly string[]): string | undefined {
  const at = words.findIndex((w) => w === '-j' || w === '-g');
  return at < 0 ? undefined : words[at + 1];
}

/** `-c P B` outside quotes in an `iptables -S -v` rule line. */
function listedCounters(words: readonly string[]): { packets: number; bytes: number } | undefined {
  for (let i = 0; i + 2 < words.length; i++) {
    const [flag, packets, bytes] = [words[i], words[i + 1] ?? '', words[i + 2] ?? ''];
    if (flag === '-c' && DIGITS.test(packets) && DIGITS.test(bytes))
      return { packets: Number(packets), bytes: Number(bytes) };
  }
  return undefined;
}

/**
 * Counters of moat's rules in `iptables -S -v` or `iptables-save -c` output of one table, in
 * the order printed; `chains` limits them to these chains.
 */
export function parseCounters(text: string, chains?: ReadonlySet<string>): RuleCounters[] {
  const out: RuleCounters[] = [];
  let lineNo = 0;
  for (const line of outputLines(text)) {
    lineNo++;
    const saved = SAVE_COUNTERS.exec(line);
    const rule = saved?.[3] ?? (line.startsWith('-A ') ? line : undefined);
    if (rule === undefined) continue;
    const chain = chainOf(rule);
    if (chains !== undefined && !chains.has(chain)) continue;
    const id = moatIdOf(rule);
    if (id === undefined) continue;
    const words = rule.match(WORD) ?? [];
    const counted =
      saved === null
        ? listedCounters(words)
        : { packets: Number(saved[1]), bytes: Number(saved[2]) };
    if (counted === undefined)
      throw new SaveParseError(`no counters in line ${lineNo} of a counted listing: ${rule}`, {
        line: lineNo,
      });
    const target = targetOf(words);
    out.push({ chain, id, ...(target === undefined ? {} : { target }), ...counted });
  }
  return out;
}

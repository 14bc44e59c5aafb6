/**
 * Parse `ipset save` output into sets with their members. Pure.
 *
 * `ipset save` prints one `create NAME TYPE [family inet|inet6] OPTIONS…` line per set, followed
 * by its `add NAME MEMBER [OPTIONS…]` lines (timeouts, counters, comments after the member).
 */
import { outputLines } from './lines.js';
import type { Family } from '../policy/model.js';
import type { LiveIpset } from './model.js';
import { SaveParseError } from './parse-save.js';

export interface ParsedIpsetSave {
  /** Sets of addresses, with their family. */
  readonly sets: Map<string, LiveIpset>;
  /**
   * Sets that hold no addresses of one family (`list:set`, `bitmap:port`, `hash:mac`): they
   * exist, but can never be the address set a policy's `ipset:` source or destination names.
   */
  readonly withoutFamily: ReadonlyMap<string, string>;
}

interface SetBuilder {
  readonly name: string;
  readonly type: string;
  readonly family: Family;
  readonly options: string;
  readonly members: string[];
  nomatch?: string[];
}

// bitmap:ip and bitmap:ip,mac are IPv4 only, and ipset save prints no family for them.
const IPV4_ONLY_TYPES = new Set(['bitmap:ip', 'bitmap:ip,mac']);

function show(line: string): string {
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

function lineError(lineNo: number, line: string, why: string): SaveParseError {
  return new SaveParseError(`ipset save output, line ${lineNo}: ${why}: ${show(line)}`, {
    line: lineNo,
  });
}

/** Like parseIpsetSave, also naming the sets that have no address family. */
export function parseIpsetSaveDetailed(text: string): ParsedIpsetSave {
  const sets = new Map<string, SetBuilder>();
  const withoutFamily = new Map<string, string>();
  const lines = outputLines(text);

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const lineNo = i + 1;
    if (line.trim() === '' || line.startsWith('#')) continue;
    const words = line.split(' ');
    const verb = words[0];
    const name = words[1];
    if (verb === 'add') {
      const member = words[2];
      if (name === undefined || name === '' || member === undefined || member === '') {
        throw lineError(lineNo, line, 'expected `add NAME MEMBER [OPTIONS]`');
      }
      const set = sets.get(name);
      if (set !== undefined) {
        set.members.push(member);
        if (words.includes('nomatch', 3)) (set.nomatch ??= []).push(member);
      } else if (!withoutFamily.has(name)) {
        throw lineError(lineNo, line, `member added to set ${name} before its create line`);
      }
      continue;
    }
    if (verb === 'create') {
      const type = words[2];
      if (
        name === undefined ||
        name === '' ||
        type === undefined ||
        !/^[a-z]+:[a-z,]+$/.test(type)
      ) {
        throw lineError(lineNo, line, 'expected `create NAME TYPE [family inet|inet6] [OPTIONS]`');
      }
      if (sets.has(name) || withoutFamily.has(name)) {
        throw lineError(lineNo, line, `set ${name} created twice`);
      }
      let family: Family;
      let rest: string[];
      if (words[3] === 'family') {
        const word = words[4];
        if (word !== 'inet' && word !== 'inet6') {
          throw lineError(lineNo, line, 'family must be inet or inet6');
        }
        family = word === 'inet' ? 'ipv4' : 'ipv6';
        rest = words.slice(5);
      } else if (IPV4_ONLY_TYPES.has(type)) {
        family = 'ipv4';
        rest = words.slice(3);
      } else {
        withoutFamily.set(name, type);
        continue;
      }
      sets.set(name, { name, type, family, options: rest.join(' '), members: [] });
      continue;
    }
    throw lineError(lineNo, line, 'expected a `create` or `add` line');
  }
  return { sets, withoutFamily };
}

/** Parses `ipset save` output; throws SaveParseError (with the line) on anything malformed. */
export function parseIpsetSave(text: string): Map<string, LiveIpset> {
  return parseIpsetSaveDetailed(text).sets;
}

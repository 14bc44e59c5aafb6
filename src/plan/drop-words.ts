/**
 * Drops in words: which policy rule dropped something ("ghost ingress rule 1
 * (firewall.yaml:21:9)") and what that rule allows ("from [host] only"), and a logged drop read
 * back through its prefix to those words. Rules are numbered from 1 as a person counts them; the
 * JSON keeps the policy path. Pure: positions come from a function the caller gives.
 */
import { parseLogPrefix } from '../compile/drop-log.js';
import type { DesiredState, RuleOrigin } from '../compile/model.js';
import type {
  EgressDestination,
  EgressRule,
  Family,
  IngressSource,
  Policy,
} from '../policy/model.js';
import { portLabel } from '../compile/ingress.js';
import { isDropRule, pathLabel, type DropReport, type RuleDrops } from './drops.js';

export type PolicyPath = readonly (string | number)[];
/** `firewall.yaml:21:9` for a policy path, when the file can be read. */
export type Locate = (path: PolicyPath) => string | undefined;

/** `ghost ingress rule 1`, `api egress deny rule 2`, `api egress default`, `defaults.ingress`. */
export function ruleTitle(path: PolicyPath): string {
  if (path.length === 0) return "moat's own rule";
  if (path[0] !== 'containers') return pathLabel(path);
  const [, group, direction, a, b] = path;
  if (typeof a === 'number') return `${group} ${direction} rule ${a + 1}`;
  if (typeof b === 'number') return `${group} ${direction} ${a} rule ${b + 1}`;
  return `${group} ${[direction, a].filter((x) => x !== undefined).join(' ')}`;
}

/** The title with its position: `ghost ingress rule 1 (firewall.yaml:21:9)`. */
export function placedTitle(path: PolicyPath, locate: Locate): string {
  const at = path.length === 0 ? undefined : locate(path);
  return at === undefined ? ruleTitle(path) : `${ruleTitle(path)} (${at})`;
}

function sourceWord(s: IngressSource | EgressDestination): string {
  switch (s.kind) {
    case 'host':
    case 'any':
      return s.kind;
    case 'cidr':
      return s.block.cidr;
    case 'ipset':
      return `ipset:${s.set}`;
    case 'container':
      return `container:${s.group}`;
  }
}

function list(words: readonly string[]): string {
  return `[${[...new Set(words)].join(', ')}]`;
}

function targetWords(rules: readonly EgressRule[]): string {
  return rules
    .map((r) => {
      const to = list(r.to.map(sourceWord));
      return r.ports === undefined ? to : `${to} (${r.ports.map(portLabel).join(', ')})`;
    })
    .join(', ');
}

/** What the rules behind one DROP allow, in the policy's words: `from [host] only`. */
export function dropMeaning(policy: Policy, paths: readonly PolicyPath[]): string {
  const first = paths[0];
  if (first === undefined) return 'a port published on loopback is the host’s alone';
  if (first[0] === 'defaults')
    return first[1] === 'egress'
      ? 'containers no egress section governs may open no connection (defaults.egress: deny)'
      : 'published ports no rule names: from [host] only (defaults.ingress: host)';
  const group = policy.containers.find((g) => g.name === first[1]);
  if (first[2] === 'ingress') {
    const sources = paths.flatMap((p) => {
      const g = policy.containers.find((c) => c.name === p[1]);
      return typeof p[3] === 'number' ? (g?.ingress[p[3]]?.from ?? []) : [];
    });
    return `from ${list(['host', ...sources.map(sourceWord)])} only`;
  }
  const egress = group?.egress;
  if (egress === undefined) return 'its egress rules';
  if (first[3] === 'deny' && typeof first[4] === 'number') {
    const rule = egress.deny[first[4]];
    return rule === undefined ? 'a deny rule' : `never to ${targetWords([rule])}`;
  }
  return egress.allow.length === 0
    ? 'may open no connection (egress default: deny)'
    : `only to ${targetWords(egress.allow)} (egress default: deny)`;
}

/** The policy rules behind each of moat's DROP rules, by the DROP's id. */
export function dropOrigins(desired: DesiredState): Map<string, readonly RuleOrigin[]> {
  const out = new Map<string, readonly RuleOrigin[]>();
  for (const family of ['ipv4', 'ipv6'] as const)
    for (const chain of desired.families[family].chains)
      for (const rule of chain.rules) if (isDropRule(rule)) out.set(rule.id, rule.origins);
  return out;
}

/** The packet of a log line, as far as the line says. */
export interface LoggedPacket {
  readonly time?: string;
  readonly protocol?: string;
  readonly source?: string;
  readonly destination?: string;
  readonly sourcePort?: string;
  readonly destinationPort?: string;
  readonly in?: string;
  readonly out?: string;
  readonly family?: Family;
}

const FIELD = /(?:^|\s)(IN|OUT|SRC|DST|PROTO|SPT|DPT)=(\S*)/g;
const SYSLOG_TIME = /^([A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)/;
const PROTOCOLS: Record<string, string> = { '1': 'ICMP', '6': 'TCP', '17': 'UDP', '58': 'ICMPv6' };

/** ulogd2's JSON output: one object per line with `oob.prefix`, `src_ip`, … */
function jsonPacket(line: string): { prefix: string; packet: LoggedPacket } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  const text = (key: string): string | undefined => {
    const v = o[key];
    return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
  };
  const protocol = text('ip.protocol');
  const packet: Record<string, string> = {};
  const set = (key: keyof LoggedPacket, v: string | undefined): void => {
    if (v !== undefined && v !== '') packet[key] = v;
  };
  set('time', text('timestamp'));
  set('protocol', protocol === undefined ? undefined : (PROTOCOLS[protocol] ?? protocol));
  set('source', text('src_ip'));
  set('destination', text('dest_ip'));
  set('sourcePort', text('src_port'));
  set('destinationPort', text('dest_port'));
  set('in', text('oob.in'));
  set('out', text('oob.out'));
  return { prefix: text('oob.prefix') ?? '', packet: withFamily(packet) };
}

function withFamily(packet: LoggedPacket): LoggedPacket {
  if (packet.source === undefined) return packet;
  return { ...packet, family: packet.source.includes(':') ? 'ipv6' : 'ipv4' };
}

/** The packet of a LOG-style line (`IN=… SRC=… DPT=…`: ulogd2's LOGEMU, the kernel log). */
function keyValuePacket(line: string): LoggedPacket {
  const fields = new Map<string, string>();
  for (const m of line.matchAll(FIELD)) if (m[1] !== undefined) fields.set(m[1], m[2] ?? '');
  const packet: Record<string, string> = {};
  const set = (key: keyof LoggedPacket, v: string | undefined): void => {
    if (v !== undefined && v !== '') packet[key] = v;
  };
  set('time', SYSLOG_TIME.exec(line)?.[1]);
  set('protocol', fields.get('PROTO'));
  set('source', fields.get('SRC'));
  set('destination', fields.get('DST'));
  set('sourcePort', fields.get('SPT'));
  set('destinationPort', fields.get('DPT'));
  set('in', fields.get('IN'));
  set('out', fields.get('OUT'));
  return withFamily(packet);
}

/** A log line of moat's, read back. */
export interface LoggedDrop {
  readonly dropId: string;
  readonly hint?: string;
  readonly packet: LoggedPacket;
}

/** A log line of moat's (LOG-style or ulogd2 JSON); undefined for any other line. */
export function parseLoggedDrop(line: string): LoggedDrop | undefined {
  const json = line.trimStart().startsWith('{') ? jsonPacket(line) : undefined;
  const prefix = parseLogPrefix(json?.prefix ?? line);
  if (prefix === undefined) return undefined;
  return { ...prefix, packet: json?.packet ?? keyValuePacket(line) };
}

function endpoint(address: string | undefined, port: string | undefined): string {
  const a = address ?? '?';
  const shown = a.includes(':') ? `[${a}]` : a;
  return port === undefined ? shown : `${shown}:${port}`;
}

/** `TCP 198.51.100.2:40000 -> 172.17.0.2:2368 (in vd0, out docker0)`. */
export function packetWords(p: LoggedPacket): string {
  const ways = [p.in === undefined ? '' : `in ${p.in}`, p.out === undefined ? '' : `out ${p.out}`]
    .filter((w) => w !== '')
    .join(', ');
  return [
    p.protocol ?? '',
    `${endpoint(p.source, p.sourcePort)} -> ${endpoint(p.destination, p.destinationPort)}`,
    ways === '' ? '' : `(${ways})`,
  ]
    .filter((w) => w !== '')
    .join(' ');
}

/** What a logged drop means, from the current policy and compiled rules. */
export interface DropExplanation {
  readonly drop: LoggedDrop;
  /** The policy rules behind the DROP; undefined when the current rules have no such DROP. */
  readonly origins?: readonly RuleOrigin[];
  /** `dropped by ghost ingress rule 1 (firewall.yaml:21:9): from [host] only`. */
  readonly words: string;
}

export function explainDrop(
  drop: LoggedDrop,
  policy: Policy,
  origins: ReadonlyMap<string, readonly RuleOrigin[]>,
  locate: Locate,
): DropExplanation {
  const found = origins.get(drop.dropId);
  if (found === undefined)
    return {
      drop,
      words:
        `dropped by a rule the current policy and containers do not make (moat:${drop.dropId}` +
        `${drop.hint === undefined ? '' : `, logged as ${drop.hint}`}): the policy or the ` +
        'containers changed since, or the change is not applied yet',
    };
  const paths = found.map((o) => o.path);
  const titles =
    paths.length === 0 ? ["moat's own rule"] : paths.map((p) => placedTitle(p, locate));
  return {
    drop,
    origins: found,
    words: `dropped by ${titles.join(' and ')}: ${dropMeaning(policy, paths)}`,
  };
}

function counted(c: { packets: number; bytes: number }): string {
  return `${c.packets} packet${c.packets === 1 ? '' : 's'} (${c.bytes} bytes)`;
}

const FAMILY_LABEL: Record<Family, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/**
 * The drops for people: a total, then each rule that dropped something, both families on one
 * line: `ghost ingress rule 1 (firewall.yaml:21:9): IPv4 12 packets (720 bytes)`.
 */
export function dropLines(report: DropReport, locate: Locate): string[] {
  const total = report.totals.ipv4.packets + report.totals.ipv6.packets;
  if (total === 0) return ['none counted since the rules were written'];
  const head = (['ipv4', 'ipv6'] as const)
    .filter((f) => report.totals[f].packets > 0)
    .map((f) => `${FAMILY_LABEL[f]} ${counted(report.totals[f])}`)
    .join(', ');
  const byRule = new Map<string, RuleDrops[]>();
  for (const row of report.rules) {
    if (row.packets === 0) continue;
    byRule.set(row.rule, [...(byRule.get(row.rule) ?? []), row]);
  }
  const lines = [`${head} since the rules were written`];
  for (const rows of byRule.values()) {
    const first = rows[0];
    if (first === undefined) continue;
    const title =
      first.path.length === 0 ? `moat's ${first.rule} rule` : placedTitle(first.path, locate);
    lines.push(
      `  ${title}: ${rows.map((r) => `${FAMILY_LABEL[r.family]} ${counted(r)}`).join(', ')}`,
    );
  }
  for (const f of ['ipv4', 'ipv6'] as const) {
    if (report.unattributed[f].packets > 0)
      lines.push(
        `  rules the policy no longer makes (apply pending): ${FAMILY_LABEL[f]} ${counted(report.unattributed[f])}`,
      );
  }
  return lines;
}

/** The drops as data, every rule included, with its position in the file. */
export function dropsDocument(report: DropReport, locate: Locate): object {
  return {
    totals: report.totals,
    unattributed: report.unattributed,
    rules: report.rules.map((r) => ({
      group: r.group,
      direction: r.direction,
      rule: r.rule,
      path: r.path,
      position: r.path.length === 0 ? null : (locate(r.path) ?? null),
      family: r.family,
      packets: r.packets,
      bytes: r.bytes,
    })),
  };
}

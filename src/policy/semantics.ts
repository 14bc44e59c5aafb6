/**
 * The checks the schema cannot express, and normalisation into the Policy model. Walks the raw
 * parsed value defensively (the schema may have failed elsewhere) so that one run reports
 * every problem. Pure.
 */
import { compareMembers, familyLabel, ipsetMember, parseCidr } from './address.js';
import { show, type PolicyIssue } from './issue.js';
import type { PathSegment } from './locate.js';
import type {
  ContainerGroup,
  ContainerSelector,
  EgressDestination,
  EgressPolicy,
  EgressRule,
  Family,
  IngressRule,
  IngressSource,
  IpsetType,
  Policy,
  PolicyIpset,
  PortRange,
  Verdict,
} from './model.js';
import { parsePort } from './ports.js';
import { IPSET_PREFIX } from '../core/ownership.js';
import { didYouMean } from '../core/suggest.js';

/** The kernel limits an ipset name to 31 characters (IPSET_MAXNAMELEN 32, with the NUL). */
export const IPSET_NAME_MAX = 31;

type Raw = Record<string, unknown>;

/** What the schema lets through as an address; anything else the schema has reported. */
const PORT_LIKE = /^[0-9]{1,5}(-[0-9]{1,5})?(\/(tcp|udp))?$/;
const ADDRESS_LIKE = /^[0-9A-Fa-f:.]+(\/[0-9]{1,3})?$/;

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A scalar or a list of scalars, with each item's path. */
function listOf(value: unknown, path: readonly PathSegment[]): [unknown, PathSegment[]][] {
  if (Array.isArray(value)) return value.map((v, i) => [v, [...path, i]]);
  return value === undefined ? [] : [[value, [...path]]];
}

function entriesOf(value: unknown): [string, unknown][] {
  return isRecord(value) ? Object.entries(value) : [];
}

class Checker {
  readonly issues: PolicyIssue[] = [];
  private readonly ipsetKeys: ReadonlySet<string>;
  private readonly groupKeys: ReadonlySet<string>;

  constructor(private readonly root: Raw) {
    this.ipsetKeys = new Set(Object.keys(isRecord(root['ipsets']) ? root['ipsets'] : {}));
    this.groupKeys = new Set(Object.keys(isRecord(root['containers']) ? root['containers'] : {}));
  }

  error(
    path: readonly PathSegment[],
    code: string,
    message: string,
    anchor: 'key' | 'value' = 'value',
  ): void {
    this.issues.push({ path, anchor, severity: 'error', code, message });
  }

  warn(
    path: readonly PathSegment[],
    code: string,
    message: string,
    anchor: 'key' | 'value' = 'value',
  ): void {
    this.issues.push({ path, anchor, severity: 'warning', code, message });
  }

  policy(): Policy {
    const defaults = isRecord(this.root['defaults']) ? this.root['defaults'] : {};
    const ingressDefault = defaults['ingress'] === 'host' ? 'host' : 'allow';
    const egressDefault: Verdict = defaults['egress'] === 'deny' ? 'deny' : 'allow';
    const ipsets = new Map<string, PolicyIpset>();
    for (const [key, raw] of entriesOf(this.root['ipsets'])) {
      const set = this.ipset(key, raw, ['ipsets', key]);
      if (set !== undefined) ipsets.set(key, set);
    }
    const containers: ContainerGroup[] = [];
    for (const [name, raw] of entriesOf(this.root['containers'])) {
      const group = this.group(name, raw, ['containers', name], egressDefault);
      if (group !== undefined) containers.push(group);
    }
    return {
      version: 1,
      defaults: { ingress: ingressDefault, egress: egressDefault },
      ipsets,
      containers,
    };
  }

  private ipset(key: string, raw: unknown, path: PathSegment[]): PolicyIpset | undefined {
    if (!isRecord(raw)) return undefined;
    if (raw['external'] === true) {
      const name = raw['name'];
      if (typeof name !== 'string') return undefined;
      if (name.length > IPSET_NAME_MAX) {
        this.error(
          [...path, 'name'],
          'name-too-long',
          `ipset name ${show(name)} is ${name.length} characters; the kernel allows at most ${IPSET_NAME_MAX}`,
        );
      }
      if (name.startsWith(IPSET_PREFIX)) {
        this.error(
          [...path, 'name'],
          'bad-name',
          `an external ipset's name must not start with \`${IPSET_PREFIX}\`: moat owns those sets and would remove it`,
        );
      }
      return { kind: 'external', key, kernelName: name };
    }
    const kernelName = `${IPSET_PREFIX}${key}`;
    if (kernelName.length > IPSET_NAME_MAX) {
      this.error(
        path,
        'name-too-long',
        `ipset key ${show(key)} is too long: its kernel name \`${kernelName.slice(0, 40)}\` would be ${kernelName.length} characters, at most ${IPSET_NAME_MAX} are allowed (keys up to ${IPSET_NAME_MAX - IPSET_PREFIX.length})`,
        'key',
      );
    }
    const family: Family = raw['family'] === 'ipv6' ? 'ipv6' : 'ipv4';
    const type: IpsetType = raw['type'] === 'hash:ip' ? 'hash:ip' : 'hash:net';
    const members = new Set<string>();
    for (const [entry, entryPath] of listOf(raw['entries'], [...path, 'entries'])) {
      if (typeof entry !== 'string' || !ADDRESS_LIKE.test(entry)) continue;
      const parsed = parseCidr(entry);
      if (!parsed.ok) {
        this.error(entryPath, parsed.code, parsed.message);
        continue;
      }
      if (parsed.block.family !== family) {
        this.error(
          entryPath,
          'family-mismatch',
          `${show(entry)} is an ${familyLabel(parsed.block.family)} entry, but set ${show(key)} is ${family}${raw['family'] === undefined ? ' (the default)' : ''}`,
        );
        continue;
      }
      const full = family === 'ipv4' ? 32 : 128;
      if (type === 'hash:ip' && parsed.prefix !== full) {
        this.error(
          entryPath,
          'bad-entry',
          `${show(entry)} is a CIDR block, but a hash:ip set holds single addresses; use type hash:net`,
        );
        continue;
      }
      if (type === 'hash:net' && parsed.prefix === 0) {
        this.error(
          entryPath,
          'bad-entry',
          `a hash:net set cannot hold a /0 block; reference \`any\` instead`,
        );
        continue;
      }
      const member = ipsetMember(parsed);
      if (members.has(member))
        this.warn(
          entryPath,
          'duplicate-entry',
          `${show(entry)} is listed twice in set ${show(key)}`,
        );
      members.add(member);
    }
    return {
      kind: 'managed',
      key,
      kernelName,
      family,
      type,
      entries: [...members].sort(compareMembers),
    };
  }

  private group(
    name: string,
    raw: unknown,
    path: PathSegment[],
    egressDefault: Verdict,
  ): ContainerGroup | undefined {
    if (!isRecord(raw)) return undefined;
    const select = this.selector(name, raw['select'], [...path, 'select']);
    const ingress: IngressRule[] = [];
    for (const [rule, rulePath] of listOf(raw['ingress'], [...path, 'ingress'])) {
      if (!isRecord(rule)) continue;
      const ports = this.ports(rule['ports'], [...rulePath, 'ports']);
      const from: IngressSource[] = [];
      for (const [source, sourcePath] of listOf(rule['from'], [...rulePath, 'from'])) {
        if (typeof source !== 'string') continue;
        const parsed =
          source === 'host' ? ({ kind: 'host' } as const) : this.target(source, sourcePath);
        if (parsed !== undefined) from.push(parsed);
      }
      ingress.push({
        ports: ports ?? [],
        from,
        ...(rule['restrict_host_services'] === true ? { restrictHostServices: true } : {}),
      });
    }
    let egress: EgressPolicy | undefined;
    if (isRecord(raw['egress'])) {
      const section = raw['egress'];
      const verdict: Verdict =
        section['default'] === 'deny'
          ? 'deny'
          : section['default'] === 'allow'
            ? 'allow'
            : egressDefault;
      const allow = this.egressRules(section['allow'], [...path, 'egress', 'allow']);
      const deny = this.egressRules(section['deny'], [...path, 'egress', 'deny']);
      if (verdict === 'allow' && allow.length > 0) {
        this.warn(
          [...path, 'egress', 'allow'],
          'allow-without-effect',
          `group ${show(name)} allows all egress by default, so its allow rules change nothing; set \`default: deny\` to make them an allowlist`,
          'key',
        );
      }
      egress = { default: verdict, allow, deny };
    }
    return { name, select, ingress, ...(egress === undefined ? {} : { egress }) };
  }

  private selector(group: string, raw: unknown, path: PathSegment[]): ContainerSelector {
    if (!isRecord(raw)) return { kind: 'name', names: [group] };
    if (raw['name'] !== undefined) {
      const names = listOf(raw['name'], [...path, 'name'])
        .map(([n]) => n)
        .filter((n): n is string => typeof n === 'string');
      return { kind: 'name', names: [...new Set(names)] };
    }
    if (typeof raw['label'] === 'string') {
      const label = raw['label'];
      const eq = label.indexOf('=');
      return eq === -1
        ? { kind: 'label', key: label }
        : { kind: 'label', key: label.slice(0, eq), value: label.slice(eq + 1) };
    }
    const compose = raw['compose'];
    if (isRecord(compose) && typeof compose['project'] === 'string') {
      return typeof compose['service'] === 'string'
        ? { kind: 'compose', project: compose['project'], service: compose['service'] }
        : { kind: 'compose', project: compose['project'] };
    }
    return { kind: 'name', names: [group] };
  }

  private egressRules(raw: unknown, path: PathSegment[]): EgressRule[] {
    const rules: EgressRule[] = [];
    for (const [rule, rulePath] of listOf(raw, path)) {
      if (!isRecord(rule)) continue;
      const to: EgressDestination[] = [];
      for (const [dest, destPath] of listOf(rule['to'], [...rulePath, 'to'])) {
        if (typeof dest !== 'string') continue;
        const parsed = this.target(dest, destPath);
        if (parsed !== undefined) to.push(parsed);
      }
      const ports =
        rule['ports'] === undefined ? 'all' : this.ports(rule['ports'], [...rulePath, 'ports']);
      rules.push(ports === 'all' || ports === undefined ? { to } : { to, ports });
    }
    return rules;
  }

  /** `any`, a CIDR, `ipset:KEY` or `container:GROUP` (`host` is handled by the caller). */
  private target(text: string, path: PathSegment[]): EgressDestination | undefined {
    if (text === 'any') return { kind: 'any' };
    if (text.startsWith('ipset:')) {
      const key = text.slice('ipset:'.length);
      if (!this.ipsetKeys.has(key)) {
        const known = [...this.ipsetKeys];
        this.error(
          path,
          'unknown-ipset',
          `ipset ${show(key)} is not declared under \`ipsets\`${known.length === 0 ? '' : ` (declared: ${known.join(', ')})`}${didYouMean(key, known, '`ipset:')}`,
        );
        return undefined;
      }
      return { kind: 'ipset', set: key };
    }
    if (text.startsWith('container:')) {
      const group = text.slice('container:'.length);
      if (!this.groupKeys.has(group)) {
        this.error(
          path,
          'unknown-group',
          `container group ${show(group)} is not declared under \`containers\`${didYouMean(group, this.groupKeys, '`container:')}`,
        );
        return undefined;
      }
      return { kind: 'container', group };
    }
    if (!ADDRESS_LIKE.test(text)) return undefined;
    const parsed = parseCidr(text);
    if (!parsed.ok) {
      this.error(path, parsed.code, parsed.message);
      return undefined;
    }
    return { kind: 'cidr', block: parsed.block };
  }

  /** Returns undefined when nothing usable was found (the schema reports the shape). */
  private ports(raw: unknown, path: PathSegment[]): 'all' | PortRange[] | undefined {
    const items = listOf(raw, path);
    const ranges: PortRange[] = [];
    let all = false;
    for (const [item, itemPath] of items) {
      if (item === 'all') {
        all = true;
        if (items.length > 1)
          this.error(itemPath, 'bad-port', '`all` must stand alone: it already covers every port');
        continue;
      }
      if (typeof item !== 'string' && typeof item !== 'number') continue;
      if (typeof item === 'number' && !Number.isInteger(item)) continue;
      if (typeof item === 'string' && !PORT_LIKE.test(item)) continue;
      const parsed = parsePort(item);
      if (parsed.ok) ranges.push(parsed.range);
      else this.error(itemPath, 'bad-port', parsed.message);
    }
    if (all) return 'all';
    return ranges;
  }
}

/** Semantic issues and, when there are no errors, the normalised policy. */
export function checkPolicy(root: Raw): {
  readonly issues: readonly PolicyIssue[];
  readonly policy: Policy;
} {
  const checker = new Checker(root);
  const policy = checker.policy();
  return { issues: checker.issues, policy };
}

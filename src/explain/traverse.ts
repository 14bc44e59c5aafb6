/**
 * One table's chains at one hook, walked the way the kernel's ipt_do_table walks them: rules in
 * order, `-j` pushes a return point, `-g` does not, RETURN (or the end of a user chain) pops one,
 * an empty stack means the built-in chain's policy. Targets that only observe (LOG, NFLOG, …)
 * continue; marks, conntrack exemptions and NAT change the packet. A match that is not modelled
 * asks the Decider, which replays the walk both ways (see explore.ts). Pure.
 */
import type { LiveChain } from '../netfilter/model.js';
import { optionOf, type RuleTarget } from '../netfilter/parse-rule.js';
import type { Family } from '../policy/model.js';
import { formatAddress, parseAddress, type Address } from './address.js';
import type { Decider } from './explore.js';
import type { HostView } from './host-view.js';
import { isUnsure, parseMark, ruleMatches, type Tri } from './match.js';
import type { RuleRef, TrailStep, Unmodelled } from './model.js';
import { formatEndpoint, type Hook, type Packet } from './packet.js';

/** The walk cannot go on: a target (or a fact) the evaluator does not model decides the packet. */
export class Undecidable extends Error {
  constructor(
    readonly why: string,
    readonly rule?: RuleRef,
  ) {
    super(why);
  }
}

export type TableVerdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' | 'reject'; readonly rule?: RuleRef; readonly policy?: string };

/** Targets that look at a packet and let it continue, changing nothing the walk models. */
const OBSERVERS = new Set([
  'LOG',
  'NFLOG',
  'ULOG',
  'TRACE',
  'AUDIT',
  'TCPMSS',
  'TOS',
  'DSCP',
  'TTL',
  'HL',
  'ECN',
  'CHECKSUM',
  'CLASSIFY',
  'CONNSECMARK',
  'SECMARK',
  'IDLETIMER',
  'LED',
  'TEE',
]);

const MAX_RULES_VISITED = 200_000;
const MAX_STACK = 256;

/** The state of one walk: what it decided, what it assumed, and the rules it met. */
export class Walk {
  readonly trail: TrailStep[] = [];
  readonly assumed: Unmodelled[] = [];

  constructor(
    readonly view: HostView,
    readonly decider: Decider,
  ) {}

  note(text: string): void {
    this.trail.push({ kind: 'note', text });
  }

  /** Walks `table`'s built-in `chain` for the packet at `hook`. */
  table(family: Family, table: string, chain: string, packet: Packet, hook: Hook): TableVerdict {
    const chains = this.view.world.netfilter.rulesets[family].tables.get(table)?.chains;
    const builtin = chains?.get(chain);
    if (chains === undefined || builtin === undefined) return { kind: 'accept' };
    return new TableWalk(this, family, table, chains, builtin, packet, hook).run();
  }
}

interface Frame {
  readonly chain: LiveChain;
  index: number;
}

class TableWalk {
  private visited = 0;

  constructor(
    private readonly walk: Walk,
    private readonly family: Family,
    private readonly tableName: string,
    private readonly chains: ReadonlyMap<string, LiveChain>,
    private readonly builtin: LiveChain,
    private readonly packet: Packet,
    private readonly hook: Hook,
  ) {}

  run(): TableVerdict {
    const stack: Frame[] = [];
    let frame: Frame = { chain: this.builtin, index: 0 };
    for (;;) {
      const rule = frame.chain.rules[frame.index];
      if (rule === undefined) {
        // The end of a chain: a user chain returns, the built-in chain applies its policy.
        const back = frame.chain === this.builtin ? undefined : stack.pop();
        if (back === undefined) return this.policy();
        frame = back;
        continue;
      }
      const position = frame.index + 1;
      frame.index++;
      if (++this.visited > MAX_RULES_VISITED)
        throw new Undecidable(
          `more than ${MAX_RULES_VISITED} rules met in ${this.tableName} ${this.hook}: a loop?`,
        );
      // Built only for the rules that matter: most rules a packet meets do not match.
      const refOf = (): RuleRef => ({
        family: this.family,
        table: this.tableName,
        chain: frame.chain.name,
        position,
        spec: rule.spec,
        ...(rule.moatId === undefined ? {} : { moatId: rule.moatId }),
      });
      const parsed = this.walk.view.parse(rule);
      if (parsed instanceof Error)
        throw new Undecidable(`cannot read the rule: ${parsed.message}`, refOf());
      const target = parsed.target;
      // A rule without a target only counts; observers (LOG, …) change nothing modelled.
      if (target === undefined || OBSERVERS.has(target.name)) continue;
      const quick = ruleMatches(parsed, this.packet, {
        view: this.walk.view,
        table: this.tableName,
      });
      if (quick === false) continue;
      const ref = refOf();
      const assumed = this.matches(quick, ref);
      if (assumed === false) continue;
      const outcome = this.apply(target, ref, assumed === true ? undefined : assumed);
      if (outcome === 'continue') continue;
      if (outcome === 'return') {
        const back = frame.chain === this.builtin ? undefined : stack.pop();
        if (back === undefined) return this.policy();
        frame = back;
        continue;
      }
      if ('jump' in outcome) {
        const next = this.chains.get(outcome.jump);
        if (next === undefined)
          throw new Undecidable(`the chain ${outcome.jump} does not exist`, ref);
        // A goto leaves no return point: the end of the target chain (or its RETURN) returns
        // to where the chain holding the goto was jumped from, or to the policy.
        if (outcome.push) {
          if (stack.length >= MAX_STACK) throw new Undecidable('chains nest too deeply', ref);
          stack.push(frame);
        }
        frame = { chain: next, index: 0 };
        continue;
      }
      return outcome.verdict;
    }
  }

  private policy(): TableVerdict {
    const policy = this.builtin.policy ?? 'ACCEPT';
    this.walk.trail.push({
      kind: 'policy',
      family: this.family,
      table: this.tableName,
      chain: this.builtin.name,
      policy,
    });
    if (policy === 'ACCEPT') return { kind: 'accept' };
    if (policy === 'DROP')
      return { kind: 'drop', policy: `${this.tableName} ${this.builtin.name} policy DROP` };
    throw new Undecidable(
      `policy ${policy} of ${this.tableName} ${this.builtin.name} is not modelled`,
    );
  }

  /** true: matched; false: not; `assumed`: matched by assumption (an unmodelled match). */
  private matches(result: Tri, ref: RuleRef): boolean | 'assumed' {
    if (!isUnsure(result)) return result;
    const choice = this.walk.decider.decide();
    this.walk.assumed.push({ rule: ref, why: result.unsure });
    if (!choice) {
      this.walk.trail.push({ kind: 'rule', rule: ref, effect: 'skipped', assumed: 'not matched' });
      return false;
    }
    return 'assumed';
  }

  private step(ref: RuleRef, effect: string, assumed: string | undefined): void {
    this.walk.trail.push({
      kind: 'rule',
      rule: ref,
      effect,
      ...(assumed === undefined ? {} : { assumed: 'matched' as const }),
    });
  }

  private apply(
    target: RuleTarget,
    ref: RuleRef,
    assumed: string | undefined,
  ): 'continue' | 'return' | { jump: string; push: boolean } | { verdict: TableVerdict } {
    switch (target.name) {
      case 'ACCEPT':
        this.step(ref, 'ACCEPT', assumed);
        return { verdict: { kind: 'accept' } };
      case 'DROP':
        this.step(ref, 'DROP', assumed);
        return { verdict: { kind: 'drop', rule: ref } };
      case 'REJECT':
        this.step(ref, 'REJECT', assumed);
        return { verdict: { kind: 'reject', rule: ref } };
      case 'RETURN':
        this.step(ref, 'RETURN', assumed);
        return 'return';
      case 'MARK':
        this.step(ref, this.setMark(target, ref), assumed);
        return 'continue';
      case 'CONNMARK':
        this.step(ref, this.connmark(target, ref), assumed);
        return 'continue';
      case 'CT':
      case 'NOTRACK':
        this.step(ref, this.notrack(target), assumed);
        return 'continue';
      case 'DNAT':
      case 'REDIRECT':
      case 'SNAT':
      case 'MASQUERADE':
        this.step(ref, this.nat(target, ref), assumed);
        return { verdict: { kind: 'accept' } };
      default:
        if (this.chains.has(target.name)) {
          this.step(ref, `${target.kind === 'goto' ? 'goto' : 'jump'} ${target.name}`, assumed);
          return { jump: target.name, push: target.kind === 'jump' };
        }
        throw new Undecidable(`target ${target.name} is not modelled`, ref);
    }
  }

  private setMark(target: RuleTarget, ref: RuleRef): string {
    this.packet.mark = markAfter(target, this.packet.mark, ref);
    return `MARK: mark is now 0x${this.packet.mark.toString(16)}`;
  }

  private connmark(target: RuleTarget, ref: RuleRef): string {
    const conn = this.packet.ct?.conn;
    if (conn === undefined) return 'CONNMARK (no conntrack entry: nothing done)';
    const save = optionOf(target.options, '--save-mark');
    const restore = optionOf(target.options, '--restore-mark');
    const masks = (): { nf: number; ct: number } => {
      const both = optionOf(target.options, '--mask');
      const nf = optionOf(target.options, '--nfmask') ?? both;
      const ct = optionOf(target.options, '--ctmask') ?? both;
      return {
        nf: nf === undefined ? 0xffffffff : Number(nf.values[0]) >>> 0,
        ct: ct === undefined ? 0xffffffff : Number(ct.values[0]) >>> 0,
      };
    };
    if (save !== undefined) {
      const { nf, ct } = masks();
      conn.mark = ((conn.mark & ~ct) ^ (this.packet.mark & nf)) >>> 0;
      return `CONNMARK save: connection mark is now 0x${conn.mark.toString(16)}`;
    }
    if (restore !== undefined) {
      const { nf, ct } = masks();
      this.packet.mark = ((this.packet.mark & ~nf) ^ (conn.mark & ct)) >>> 0;
      return `CONNMARK restore: mark is now 0x${this.packet.mark.toString(16)}`;
    }
    conn.mark = markAfter(target, conn.mark, ref);
    return `CONNMARK: connection mark is now 0x${conn.mark.toString(16)}`;
  }

  private notrack(target: RuleTarget): string {
    const notrack =
      target.name === 'NOTRACK' || optionOf(target.options, '--notrack') !== undefined;
    if (!notrack) return 'CT (continues)';
    if (this.packet.ct === undefined) this.packet.untracked = true;
    return 'untracked: no conntrack entry, no NAT';
  }

  private nat(target: RuleTarget, ref: RuleRef): string {
    const packet = this.packet;
    const conn = packet.ct?.conn;
    if (conn === undefined) return `${target.name} (untracked: nothing done)`;
    switch (target.name) {
      case 'DNAT':
      case 'REDIRECT': {
        const to =
          target.name === 'DNAT' ? this.dnatTarget(target, ref) : this.redirectTarget(target, ref);
        const changed =
          to.address.value !== packet.dst.value ||
          (to.port !== undefined && to.port !== packet.dport);
        packet.dst = to.address;
        if (to.port !== undefined) packet.dport = to.port;
        conn.reply = { ...conn.reply, src: packet.dst, sport: packet.dport };
        if (changed) conn.dnat = true;
        return `${target.name} to ${formatEndpoint(packet.dst, packet.dport)}`;
      }
      default: {
        const to =
          target.name === 'SNAT' ? this.snatTarget(target, ref) : this.masqueradeSource(ref);
        const changed =
          to.address.value !== packet.src.value ||
          (to.port !== undefined && to.port !== packet.sport);
        packet.src = to.address;
        if (to.port !== undefined) packet.sport = to.port;
        conn.reply = { ...conn.reply, dst: packet.src, dport: packet.sport };
        if (changed) conn.snat = true;
        return `${target.name}: source is now ${formatAddress(packet.src)}`;
      }
    }
  }

  private dnatTarget(target: RuleTarget, ref: RuleRef): { address: Address; port?: number } {
    const options = target.options.filter(
      (o) => o.name === '--to-destination' || o.name === '--to',
    );
    const value = options.length === 1 ? options[0]?.values[0] : undefined;
    const parsed = value === undefined ? undefined : parseNatEndpoint(value);
    if (parsed === undefined)
      throw new Undecidable(
        `DNAT ${target.options.map((o) => [o.name, ...o.values].join(' ')).join(' ')} is not modelled (one address, one port)`,
        ref,
      );
    return parsed;
  }

  private snatTarget(target: RuleTarget, ref: RuleRef): { address: Address; port?: number } {
    const options = target.options.filter((o) => o.name === '--to-source' || o.name === '--to');
    const value = options.length === 1 ? options[0]?.values[0] : undefined;
    const parsed = value === undefined ? undefined : parseNatEndpoint(value);
    if (parsed === undefined)
      throw new Undecidable('SNAT to several addresses or ports is not modelled', ref);
    return parsed;
  }

  private redirectTarget(target: RuleTarget, ref: RuleRef): { address: Address; port?: number } {
    const ports = optionOf(target.options, '--to-ports')?.values[0];
    const port = ports === undefined ? undefined : Number(ports);
    if (port !== undefined && !Number.isInteger(port))
      throw new Undecidable('REDIRECT to a port range is not modelled', ref);
    const family = this.packet.family;
    const address =
      this.hook === 'OUTPUT'
        ? parseAddress(family === 'ipv4' ? '127.0.0.1' : '::1')
        : this.packet.iif === undefined
          ? undefined
          : this.walk.view.interfaceAddress(this.packet.iif, family);
    if (address === undefined)
      throw new Undecidable('REDIRECT on an interface without an address', ref);
    return port === undefined ? { address } : { address, port };
  }

  private masqueradeSource(ref: RuleRef): { address: Address; port?: number } {
    const oif = this.packet.oif;
    const address =
      oif === undefined ? undefined : this.walk.view.interfaceAddress(oif, this.packet.family);
    if (address === undefined)
      throw new Undecidable(`MASQUERADE out of ${oif ?? '?'}, which has no address`, ref);
    return { address };
  }
}

/** `1.2.3.4`, `1.2.3.4:80`, `[fd00::2]:443`, `fd00::2`; undefined for ranges. */
export function parseNatEndpoint(text: string): { address: Address; port?: number } | undefined {
  let host = text;
  let port: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.+))?$/.exec(text);
  if (bracket !== null) {
    host = bracket[1] ?? '';
    port = bracket[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host = '', port] = text.split(':');
  }
  const address = parseAddress(host);
  if (address === undefined) return undefined;
  if (port === undefined) return { address };
  if (!/^\d+$/.test(port)) return undefined;
  return { address, port: Number(port) };
}

/** The mark after a MARK (or CONNMARK mark-setting) target. */
function markAfter(target: RuleTarget, mark: number, ref: RuleRef): number {
  for (const option of target.options) {
    const parsed = parseMark(option.values[0] ?? '');
    if (parsed === undefined) continue;
    switch (option.name) {
      case '--set-xmark':
        return ((mark & ~parsed.mask) ^ parsed.value) >>> 0;
      case '--set-mark':
        return ((mark & ~parsed.mask) | parsed.value) >>> 0;
      case '--and-mark':
        return (mark & parsed.value) >>> 0;
      case '--or-mark':
        return (mark | parsed.value) >>> 0;
      case '--xor-mark':
        return (mark ^ parsed.value) >>> 0;
      default:
        break;
    }
  }
  throw new Undecidable(
    `${target.name} ${target.options.map((o) => o.name).join(' ')} is not modelled`,
    ref,
  );
}

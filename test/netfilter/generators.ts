/**
 * fast-check generators of LiveRulesets whose rules are already in the canonical form
 * iptables-save prints (`/32` host masks, `-m tcp` after `-p tcp`, `-p` before other matches,
 * quoted comments, conntrack options in save order), so loading one into the kernel and saving
 * it again must give back exactly the same rules.
 */
import fc from 'fast-check';
import type { LiveChain, LiveRule, LiveRuleset, LiveTable } from '../../src/netfilter/model.js';
import type { Family } from '../../src/policy/model.js';

const BUILTIN: Record<string, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
};

const USER_CHAINS = [
  'DOCKER-USER',
  'MOAT-FORWARD',
  'MOAT-INPUT',
  'MOAT-E-web',
  'MOAT-I-ghost-2368',
  'f2b-sshd',
  'KUBE-SVC-ABCDEF',
];

const octet = fc.integer({ min: 0, max: 255 });
const port = fc.integer({ min: 1, max: 65535 });

function address(family: Family): fc.Arbitrary<string> {
  if (family === 'ipv4') {
    return fc.oneof(
      fc.tuple(octet, octet).map(([a, b]) => `10.${a}.${b}.7/32`),
      fc.tuple(octet, fc.constantFrom(8, 16, 24)).map(([a, bits]) => {
        const parts = [10, a, 0, 0].map((v, i) => (i * 8 < bits ? v : 0));
        return `${parts.join('.')}/${bits}`;
      }),
    );
  }
  return fc.oneof(
    fc.integer({ min: 1, max: 0xffff }).map((h) => `2001:db8::${h.toString(16)}/128`),
    fc.integer({ min: 1, max: 0xffff }).map((h) => `2001:db8:${h.toString(16)}::/64`),
  );
}

const iface = fc.constantFrom('eth0', 'docker0', 'br-6ead47647eec', 'veth1');

/** Comment text as iptables-save prints it: `"` and `'` come back backslash-escaped. */
const commentText = fc
  .array(fc.constantFrom(...'abcXYZ09 _-:./,'.split(''), '\\"', "\\'"), {
    minLength: 1,
    maxLength: 40,
  })
  .map((parts) => parts.join(''))
  .filter((text) => !text.startsWith(' ') && !text.endsWith(' '));

const moatId = fc.stringMatching(/^[0-9a-z]{1,12}$/);

const comment = fc.oneof(
  moatId.map((id) => ({ text: `-m comment --comment "moat:${id}"`, id })),
  // iptables-save leaves a comment of only [A-Za-z0-9_-] unquoted (even `-j`), quotes the rest.
  fc
    .oneof(commentText, fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/), fc.constantFrom('-j', '-g'))
    .map((text) => ({
      text: `-m comment --comment ${/^[A-Za-z0-9_-]+$/.test(text) ? text : `"${text}"`}`,
      id: undefined,
    })),
);

/** Chains where packets have an input interface (the kernel refuses `-i` elsewhere). */
const HAS_INPUT = new Set(['INPUT', 'FORWARD', 'PREROUTING']);

function arbRule(family: Family, table: string, chain: string, jumpable: readonly string[]) {
  const targets: fc.Arbitrary<{ text: string; target?: string }>[] = [
    fc.constant({ text: '' }),
    fc.constantFrom('ACCEPT', 'DROP', 'RETURN').map((t) => ({ text: `-j ${t}`, target: t })),
  ];
  if (table !== 'filter')
    targets.splice(1, 1, fc.constant({ text: '-j RETURN', target: 'RETURN' }));
  if (table === 'filter') {
    targets.push(fc.constant({ text: '-j LOG --log-prefix "moat drop: "', target: 'LOG' }));
  }
  if (jumpable.length > 0) {
    targets.push(
      fc
        .tuple(fc.constantFrom('-j', '-g'), fc.constantFrom(...jumpable))
        .map(([how, chain]) => ({ text: `${how} ${chain}`, target: chain })),
    );
  }
  return fc
    .record({
      src: fc.option(fc.tuple(fc.boolean(), address(family)), { nil: undefined }),
      dst: fc.option(address(family), { nil: undefined }),
      inIf: HAS_INPUT.has(chain)
        ? fc.option(fc.tuple(fc.boolean(), iface), { nil: undefined })
        : fc.constant(undefined),
      mark: fc.option(fc.integer({ min: 1, max: 0xffff }), { nil: undefined }),
      proto: fc.constantFrom(undefined, 'tcp', 'udp'),
      dport: fc.option(fc.tuple(port, fc.option(port, { nil: undefined })), { nil: undefined }),
      conntrack: fc.constantFrom(
        undefined,
        '-m conntrack --ctstate RELATED,ESTABLISHED',
        '-m conntrack --ctdir REPLY',
        'DNAT',
      ),
      ctPort: port,
      comment: fc.option(comment, { nil: undefined }),
      commentFirst: fc.boolean(),
      target: fc.oneof(...targets),
    })
    .map((r): LiveRule => {
      const parts: string[] = [];
      if (r.src !== undefined) parts.push(`${r.src[0] ? '! ' : ''}-s ${r.src[1]}`);
      if (r.dst !== undefined) parts.push(`-d ${r.dst}`);
      if (r.inIf !== undefined) parts.push(`${r.inIf[0] ? '! ' : ''}-i ${r.inIf[1]}`);
      if (r.proto !== undefined) parts.push(`-p ${r.proto}`);
      const matches: string[] = [];
      if (r.proto !== undefined && r.dport !== undefined) {
        const [a, b] = r.dport;
        const range = b === undefined || b === a ? `${a}` : `${Math.min(a, b)}:${Math.max(a, b)}`;
        matches.push(`-m ${r.proto} --dport ${range}`);
      }
      if (r.conntrack === 'DNAT') {
        if (r.proto !== undefined) {
          matches.push(`-m conntrack --ctstate DNAT --ctorigdstport ${r.ctPort} --ctdir ORIGINAL`);
        }
      } else if (r.conntrack !== undefined) matches.push(r.conntrack);
      // Marks come back as hex.
      if (r.mark !== undefined) matches.push(`-m mark --mark 0x${r.mark.toString(16)}`);
      if (r.comment !== undefined) {
        if (r.commentFirst) matches.unshift(r.comment.text);
        else matches.push(r.comment.text);
      }
      const spec = [...parts, ...matches, r.target.text].filter((p) => p !== '').join(' ');
      const rule: { spec: string; moatId?: string; target?: string } = { spec };
      if (r.comment?.id !== undefined) rule.moatId = r.comment.id;
      if (r.target.target !== undefined) rule.target = r.target.target;
      return rule;
    });
}

/** A table with its built-in chains and some user chains, in the order iptables-save lists them. */
function arbTable(family: Family, name: string): fc.Arbitrary<LiveTable> {
  const builtin = BUILTIN[name]!;
  return fc
    .record({
      users: fc.subarray(USER_CHAINS),
      policies: fc.array(fc.constantFrom('ACCEPT', 'DROP'), {
        minLength: builtin.length,
        maxLength: builtin.length,
      }),
      seed: fc.nat(),
    })
    .chain(({ users, policies }) => {
      // iptables-save lists user chains sorted by name; jumps only go "forward" in that order,
      // so a generated ruleset never loops (the kernel refuses loops).
      const sorted = [...users].sort();
      const chainNames = [...builtin, ...sorted];
      return fc
        .tuple(
          ...chainNames.map((chain, i) => {
            const later = i < builtin.length ? sorted : sorted.slice(i - builtin.length + 1);
            return fc.array(arbRule(family, name, chain, later), { maxLength: 6 });
          }),
        )
        .map((ruleLists): LiveTable => {
          const chains = new Map<string, LiveChain>();
          chainNames.forEach((chain, i) => {
            const rules = ruleLists[i]!;
            if (i < builtin.length) {
              const policy = name === 'filter' ? policies[i]! : 'ACCEPT';
              chains.set(chain, { name: chain, policy, rules });
            } else chains.set(chain, { name: chain, rules });
          });
          return { name, chains };
        });
    });
}

export function arbRuleset(family: Family): fc.Arbitrary<LiveRuleset> {
  return fc
    .tuple(
      arbTable(family, 'filter'),
      fc.option(arbTable(family, 'nat'), { nil: undefined }),
      fc.option(arbTable(family, 'mangle'), { nil: undefined }),
    )
    .map(([filter, nat, mangle]) => {
      const tables = new Map<string, LiveTable>([['filter', filter]]);
      if (nat !== undefined) tables.set('nat', nat);
      if (mangle !== undefined) tables.set('mangle', mangle);
      return { family, tables };
    });
}

/** A ruleset as plain data for readable diffs: tables by name, chains in order. */
export function plain(ruleset: LiveRuleset): unknown {
  const tables: Record<string, unknown> = {};
  for (const table of ruleset.tables.values()) {
    tables[table.name] = [...table.chains.values()].map((c) => ({
      chain: c.name,
      policy: c.policy ?? '-',
      rules: c.rules.map((r) => ({ ...r })),
    }));
  }
  return { family: ruleset.family, tables };
}

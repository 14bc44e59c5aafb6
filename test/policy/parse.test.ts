import { describe, expect, test } from '@jest/globals';
import { parsePolicy } from '../../src/policy/parse.js';
import type { Policy } from '../../src/policy/model.js';

/** `LINE:COL code message` for each diagnostic, in order. */
function problems(text: string): string[] {
  const result = parsePolicy(text, 'firewall.yaml');
  return result.diagnostics.map(
    (d) => `${d.line}:${d.column} ${d.severity} ${d.code} ${d.message}`,
  );
}

function valid(text: string): Policy {
  const result = parsePolicy(text, 'firewall.yaml');
  expect(result.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  if (result.policy === undefined) throw new Error('no policy');
  return result.policy;
}

const GHOST = (from: string): string =>
  `version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368/tcp]\n        from: ${from}\n`;

describe('invalid files: exact messages and locations', () => {
  const cases: [string, string, string[]][] = [
    ['empty file', '', ['1:1 error empty the file is empty; a policy starts with `version: 1`']],
    [
      'only a comment',
      '# nothing\n',
      ['1:1 error empty the file holds only comments; a policy starts with `version: 1`'],
    ],
    [
      'top level is a list',
      '- version: 1\n',
      [
        '1:1 error not-a-mapping the top level must be a mapping (`version: 1`, `containers: …`), found a list',
      ],
    ],
    [
      'top level is a scalar',
      'hello\n',
      [
        '1:1 error not-a-mapping the top level must be a mapping (`version: 1`, `containers: …`), found `hello`',
      ],
    ],
    [
      'missing version',
      'containers: {}\n',
      ['1:1 error missing-key missing required key `version`'],
    ],
    [
      'other version',
      'version: 2\ncontainers: {bogus: 1}\n',
      ['1:10 error bad-version unsupported policy version 2: this moat reads `version: 1`'],
    ],
    [
      'version as a string',
      'version: "1"\n',
      ['1:10 error bad-version unsupported policy version `1`: this moat reads `version: 1`'],
    ],
    [
      'misspelt source',
      GHOST('[hots]'),
      [
        '6:16 error schema expected one of host, any, a CIDR, ipset:NAME, container:GROUP; found `hots`',
      ],
    ],
    [
      'unknown key in a rule',
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [2368]\n        form: [host]\n',
      [
        '5:9 error missing-key missing required key `from`',
        '6:9 error unknown-key unknown key `form` (expected one of: ports, from, restrict_host_services); did you mean `from`?',
      ],
    ],
    [
      'unknown top-level key',
      'version: 1\ncontainer: {}\n',
      [
        '2:1 error unknown-key unknown key `container` (expected one of: version, defaults, ipsets, containers); did you mean `containers`?',
      ],
    ],
    [
      'bad default',
      'version: 1\ndefaults:\n  ingress: deny\n',
      ['3:12 error schema `ingress` must be one of: allow, host; found the string `deny`'],
    ],
    [
      'duplicate key',
      'version: 1\ncontainers:\n  ghost: {}\n  ghost: {}\n',
      ['4:3 error duplicate-key duplicate key `ghost`: each key may appear once in a mapping'],
    ],
    [
      'multiple documents',
      'version: 1\n---\nversion: 1\n',
      [
        '2:1 error multiple-documents the file holds more than one YAML document (a second `---`); a policy is one document',
      ],
    ],
    [
      'YAML syntax error',
      'version: 1\ncontainers:\n  ghost: [\n',
      [
        '4:1 error yaml-syntax Flow sequence in block collection must be sufficiently indented and end with a ]',
      ],
    ],
    [
      'host bits set',
      GHOST('[10.0.5.1/24]'),
      [
        '6:16 error host-bits-set `10.0.5.1/24` has host bits set: write the network `10.0.5.0/24`, or the single address `10.0.5.1`',
      ],
    ],
    [
      'bad address',
      GHOST('[300.1.2.3, "2001:db8::/129", 010.0.0.1]'),
      [
        '6:16 error bad-address `300.1.2.3` is not an IPv4 or IPv6 address or CIDR block',
        '6:27 error bad-cidr `2001:db8::/129`: the prefix length of an IPv6 block must be 0 to 128',
        '6:45 error bad-address `010.0.0.1` is not an IPv4 or IPv6 address or CIDR block',
      ],
    ],
    [
      'IPv4-mapped IPv6',
      GHOST('["::ffff:192.0.2.1"]'),
      [
        '6:16 error bad-address `::ffff:192.0.2.1` is an IPv4-mapped IPv6 address; write the IPv4 address `192.0.2.1` instead',
      ],
    ],
    [
      'unresolved references',
      GHOST('[ipset:office, container:db]'),
      [
        '6:16 error unknown-ipset ipset `office` is not declared under `ipsets`',
        '6:30 error unknown-group container group `db` is not declared under `containers`',
      ],
    ],
    [
      'ports out of range, backwards, all not alone, bad form',
      'version: 1\ncontainers:\n  ghost:\n    ingress:\n      - ports: [0, 70000, 9000-8000/udp, all, 80/sctp]\n        from: any\n',
      [
        '5:47 error schema expected a port like 2368, 2368/tcp, 9000/udp, 8000-8100/tcp, or all; found `80/sctp`',
        '5:17 error bad-port port 0 is out of range: ports are 1 to 65535',
        '5:20 error bad-port port 70000 is out of range: ports are 1 to 65535',
        '5:27 error bad-port port range `9000-8000/udp` is backwards: write 8000-9000/udp',
        '5:42 error bad-port `all` must stand alone: it already covers every port',
      ].sort(),
    ],
    [
      'ipset entries of the wrong family and type',
      'version: 1\nipsets:\n  a:\n    type: hash:ip\n    entries: [192.0.2.0/24, "2001:db8::1", 192.0.2.7/32]\n  b:\n    family: ipv6\n    entries: ["::/0"]\n',
      [
        '5:15 error bad-entry `192.0.2.0/24` is a CIDR block, but a hash:ip set holds single addresses; use type hash:net',
        '5:29 error family-mismatch `2001:db8::1` is an IPv4 entry, but set `a` is ipv4 (the default)'.replace(
          'IPv4 entry',
          'IPv6 entry',
        ),
        '8:15 error bad-entry a hash:net set cannot hold a /0 block; reference `any` instead',
      ],
    ],
    [
      'names too long or unsafe',
      'version: 1\nipsets:\n  abcdefghijklmnopqrstuvwxyz0:\n    entries: []\n  ext:\n    external: true\n    name: moat-stolen\ncontainers:\n  "we b":\n    select:\n      name: "ghost\\nx"\n',
      [
        '3:3 error name-too-long ipset key `abcdefghijklmnopqrstuvwxyz0` is too long: its kernel name `moat-abcdefghijklmnopqrstuvwxyz0` would be 32 characters, at most 31 are allowed (keys up to 26)',
        "7:11 error bad-name an external ipset's name must not start with `moat-`: moat owns those sets and would remove it",
        '9:3 error bad-name invalid name `we b`: a group name may contain only letters, digits, `_`, `.` and `-`, and must start with a letter or digit',
        '11:13 error schema a container name may contain only letters, digits, `_`, `.` and `-`, and must start with a letter or digit; found `ghost\\nx`',
      ],
    ],
    [
      'select with two kinds',
      'version: 1\ncontainers:\n  g:\n    select:\n      name: g\n      label: a=b\n',
      ['5:7 error schema `select` takes exactly one of: name, label, compose'],
    ],
    [
      'egress to host',
      'version: 1\ncontainers:\n  g:\n    egress:\n      allow:\n        - to: host\n',
      [
        '5:7 warning allow-without-effect group `g` allows all egress by default, so its allow rules change nothing; set `default: deny` to make them an allowlist',
        "6:15 error schema expected one of any, a CIDR, ipset:NAME, container:GROUP; found `host` (the host is not an egress destination: write the host's address as a CIDR)",
      ],
    ],
    [
      'wrong types',
      'version: 1\ncontainers:\n  g:\n    ingress: {ports: 1}\n    egress: []\n',
      [
        '4:14 error schema `ingress` must be a list, found a mapping',
        '5:13 error schema `egress` must be a mapping, found a list',
      ],
    ],
    [
      'a string with a quote and a newline as a label',
      'version: 1\ncontainers:\n  g:\n    select:\n      label: "a=\\"b\\"\\nc"\n',
      [
        '5:14 error schema expected `key=value` or `key`: a label key may contain letters, digits, `_`, `.`, `:`, `/` and `-`, a value also `@`, `+`, `,` and `=`; found `a=\\"b\\"\\nc`',
      ],
    ],
  ];
  test.each(cases)('%s', (_name, text, expected) => {
    expect(problems(text).sort()).toEqual([...expected].sort());
    expect(parsePolicy(text, 'firewall.yaml').policy).toBeUndefined();
  });

  test('every problem is reported at once', () => {
    const text =
      'version: 1\ndefaults: {egress: maybe}\ncontainers:\n  a:\n    ingress:\n      - ports: 99999\n        from: [hots, ipset:x]\n';
    expect(problems(text)).toHaveLength(4);
  });
});

describe('valid files are normalised', () => {
  test('defaults, select and egress fall back as documented', () => {
    const policy = valid(
      'version: 1\ndefaults:\n  egress: deny\ncontainers:\n  ghost:\n    ingress:\n      - ports: 2368\n        from: host\n  worker:\n    egress:\n      allow:\n        - to: 10.0.5.0/24\n          ports: [5432/tcp]\n',
    );
    expect(policy.defaults).toEqual({ ingress: 'allow', egress: 'deny' });
    const [ghost, worker] = policy.containers;
    expect(ghost).toEqual({
      name: 'ghost',
      select: { kind: 'name', names: ['ghost'] },
      ingress: [
        { ports: [{ protocol: 'tcp', first: 2368, last: 2368 }], from: [{ kind: 'host' }] },
      ],
    });
    expect(worker?.egress).toEqual({
      default: 'deny',
      allow: [
        {
          to: [{ kind: 'cidr', block: { family: 'ipv4', cidr: '10.0.5.0/24' } }],
          ports: [{ protocol: 'tcp', first: 5432, last: 5432 }],
        },
      ],
      deny: [],
    });
  });

  test('addresses become canonical blocks; ipset entries are printed as ipset prints them', () => {
    const policy = valid(
      'version: 1\nipsets:\n  v6:\n    family: ipv6\n    entries: ["2001:0db8:0::1", "2001:db8::/32", "2001:db8::1/128"]\n  v4:\n    entries: [198.51.100.7/32, 10.0.0.0/8, 9.9.9.9]\n  ext:\n    external: true\n    name: office-vpn\ncontainers:\n  g:\n    select: {label: com.example.role}\n    ingress:\n      - ports: [all]\n        from: [192.0.2.7, "2001:DB8::7", ipset:v6, ipset:ext, container:g, any]\n    egress:\n      default: deny\n      allow:\n        - to: [any]\n          ports: [53/udp, 8000-8100]\n',
    );
    expect(policy.ipsets.get('v6')).toEqual({
      kind: 'managed',
      key: 'v6',
      kernelName: 'moat-v6',
      family: 'ipv6',
      type: 'hash:net',
      entries: ['2001:db8::/32', '2001:db8::1'],
    });
    expect(policy.ipsets.get('v4')).toMatchObject({
      entries: ['9.9.9.9', '10.0.0.0/8', '198.51.100.7'],
    });
    expect(policy.ipsets.get('ext')).toEqual({
      kind: 'external',
      key: 'ext',
      kernelName: 'office-vpn',
    });
    const group = policy.containers[0];
    expect(group?.select).toEqual({ kind: 'label', key: 'com.example.role' });
    expect(group?.ingress[0]).toEqual({
      ports: 'all',
      from: [
        { kind: 'cidr', block: { family: 'ipv4', cidr: '192.0.2.7/32' } },
        { kind: 'cidr', block: { family: 'ipv6', cidr: '2001:db8::7/128' } },
        { kind: 'ipset', set: 'v6' },
        { kind: 'ipset', set: 'ext' },
        { kind: 'container', group: 'g' },
        { kind: 'any' },
      ],
    });
    expect(group?.egress?.allow[0]?.ports).toEqual([
      { protocol: 'udp', first: 53, last: 53 },
      { protocol: 'tcp', first: 8000, last: 8100 },
    ]);
  });

  test('compose and label selectors', () => {
    const policy = valid(
      'version: 1\ncontainers:\n  a: {select: {compose: {project: blog}}}\n  b: {select: {compose: {project: blog, service: db}}}\n  c: {select: {label: "tier=web"}}\n  d: {select: {name: [x, y, x]}}\n',
    );
    expect(policy.containers.map((g) => g.select)).toEqual([
      { kind: 'compose', project: 'blog' },
      { kind: 'compose', project: 'blog', service: 'db' },
      { kind: 'label', key: 'tier', value: 'web' },
      { kind: 'name', names: ['x', 'y'] },
    ]);
  });

  test('egress ports `all` means every port; an egress section without default uses defaults.egress', () => {
    const policy = valid(
      'version: 1\ncontainers:\n  g:\n    egress:\n      deny:\n        - to: 10.0.0.0/8\n          ports: all\n',
    );
    expect(policy.containers[0]?.egress).toEqual({
      default: 'allow',
      allow: [],
      deny: [{ to: [{ kind: 'cidr', block: { family: 'ipv4', cidr: '10.0.0.0/8' } }] }],
    });
  });

  test('a warning does not make the file invalid', () => {
    const result = parsePolicy(
      'version: 1\nipsets:\n  a: {entries: [192.0.2.1, 192.0.2.1/32]}\n',
      'f',
    );
    expect(result.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity} ${d.code}`)).toEqual([
      '3:28 warning duplicate-entry',
    ]);
    expect(result.policy?.ipsets.get('a')).toMatchObject({ entries: ['192.0.2.1'] });
  });
});

describe('hostile input yields a located error, never a throw', () => {
  const bomb = [
    'a: &a ["x","x","x","x","x","x","x","x","x"]',
    'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
    'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
    '',
  ].join('\n');
  const cases: [string, string, string][] = [
    ['alias bomb', bomb, '2:8 alias-limit'],
    ['deep flow nesting', '['.repeat(50000), '1:'],
    [
      'deep block nesting',
      Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i)}- `).join('\n'),
      '1:',
    ],
    ['binary garbage', '\u0000\u0001\u00ff\ufffd\u0007: [', '1:'],
    ['over the size limit', `version: 1\n#${'x'.repeat(1024 * 1024)}\n`, '1:1 too-large'],
    ['a tab as indentation', 'version: 1\ncontainers:\n\tghost: {}\n', '3:'],
  ];
  test.each(cases)('%s', (_name, text, prefix) => {
    const result = parsePolicy(text, 'f');
    expect(result.policy).toBeUndefined();
    const first = result.diagnostics[0];
    expect(first).toBeDefined();
    expect(`${first?.line}:${first?.column} ${first?.code}`.startsWith(prefix)).toBe(true);
  });

  test('aliases within the limit are fine and locate inside the anchor', () => {
    const text =
      'version: 1\ncontainers:\n  a:\n    ingress:\n      - ports: 80\n        from: &office [hots]\n  b:\n    ingress:\n      - ports: 81\n        from: *office\n';
    expect(problems(text)).toEqual([
      '6:24 error schema expected one of host, any, a CIDR, ipset:NAME, container:GROUP; found `hots`',
    ]);
  });
});

describe('YAML details', () => {
  test('a mapping used as a key is located and refused', () => {
    expect(problems('version: 1\n? [a, b]\n: 1\n')).toEqual([
      '2:3 error bad-key a key must be a plain name, not a list or a mapping',
    ]);
  });

  test('an unknown tag is a warning, the file still validates', () => {
    const result = parsePolicy('version: 1\ncontainers:\n  g: !thing {}\n', 'f');
    expect(result.policy).toBeDefined();
    expect(result.diagnostics.map((d) => `${d.line}:${d.column} ${d.severity}`)).toEqual([
      '3:6 warning',
    ]);
  });
});

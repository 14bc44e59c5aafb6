/** The reference documents every key of the schema, and every shipped policy validates. */
import { describe, expect, test } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { formatDiagnostic } from '../../src/policy/format.js';
import { parsePolicy } from '../../src/policy/parse.js';
import { policySchema } from '../../src/policy/schema.js';

const ROOT = new URL('../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, ROOT), 'utf8');

type SchemaNode = Record<string, unknown>;

/** Every key the schema defines, with the description it carries. */
function schemaKeys(
  node: unknown,
  defs: SchemaNode,
  seen = new Set<unknown>(),
): Map<string, unknown> {
  const keys = new Map<string, unknown>();
  if (typeof node !== 'object' || node === null || seen.has(node)) return keys;
  seen.add(node);
  const n = node as SchemaNode;
  if (typeof n['$ref'] === 'string') {
    const target = defs[n['$ref'].replace('#/$defs/', '')];
    for (const [k, v] of schemaKeys(target, defs, seen)) keys.set(k, v);
  }
  for (const [key, value] of Object.entries((n['properties'] as SchemaNode | undefined) ?? {})) {
    keys.set(key, (value as SchemaNode)['description']);
    for (const [k, v] of schemaKeys(value, defs, seen)) keys.set(k, v);
  }
  for (const child of ['additionalProperties', 'items', 'then', 'else']) {
    for (const [k, v] of schemaKeys(n[child], defs, seen)) keys.set(k, v);
  }
  return keys;
}

describe('docs/policy.md', () => {
  const schema = policySchema() as SchemaNode;
  const keys = schemaKeys(schema, schema['$defs'] as SchemaNode);
  const docs = read('docs/policy.md');

  test('the schema defines the keys of the language', () => {
    expect([...keys.keys()].sort()).toEqual(
      [
        'allow',
        'compose',
        'containers',
        'default',
        'defaults',
        'deny',
        'egress',
        'entries',
        'external',
        'family',
        'from',
        'ingress',
        'ipsets',
        'label',
        'name',
        'ports',
        'project',
        'restrict_host_services',
        'select',
        'service',
        'to',
        'type',
        'version',
      ].sort(),
    );
  });

  test.each([...keys.keys()])('documents `%s` with a description in the schema', (key) => {
    expect(docs).toMatch(new RegExp(`^#+ .*\`[^\`]*\\b${key}\``, 'm'));
    expect(typeof keys.get(key)).toBe('string');
  });
});

describe('shipped policies validate', () => {
  const examples = readdirSync(new URL('examples/', ROOT), { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(new URL(`examples/${e.name}/firewall.yaml`, ROOT)))
    .map((e) => `examples/${e.name}/firewall.yaml`);

  test('the five scenarios are there, each with a README', () => {
    for (const scenario of [
      'host-only-port',
      'internal-network-blocked',
      'egress-allowlist-ipset',
      'compose-labels',
      'office-only-admin-external-ipset',
    ]) {
      expect(examples).toContain(`examples/${scenario}/firewall.yaml`);
      expect(read(`examples/${scenario}/README.md`).length).toBeGreaterThan(100);
    }
  });

  test.each(['firewall.yaml', ...examples])('%s', (path) => {
    const text = read(path);
    const result = parsePolicy(text, path);
    expect(result.diagnostics.map((d) => formatDiagnostic(d, text))).toEqual([]);
    expect(result.policy?.containers.length).toBeGreaterThan(0);
  });

  test('the top-level policy keeps ghost 2368/tcp host-only', () => {
    const policy = parsePolicy(read('firewall.yaml'), 'firewall.yaml').policy;
    expect(policy?.containers).toEqual([
      {
        name: 'ghost',
        select: { kind: 'name', names: ['ghost'] },
        ingress: [
          { ports: [{ protocol: 'tcp', first: 2368, last: 2368 }], from: [{ kind: 'host' }] },
        ],
      },
    ]);
  });
});

/**
 * The validator a run uses is generated ahead of time from schemas/firewall.schema.json
 * (src/policy/generated/). It must be what the generator makes of today's schema, and it must
 * answer exactly as ajv compiling the schema at run time does.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import {
  compilePolicySchema,
  GENERATED_FILE,
  generatePolicyValidator,
  REGENERATE_COMMAND,
  SCHEMA_FILE,
} from '../../scripts/gen-schema-validator.mjs';
import { policySchema, schemaErrors } from '../../src/policy/schema.js';

const ROOT = new URL('../../', import.meta.url);
const schemaText = readFileSync(SCHEMA_FILE, 'utf8');

describe('the generated validator', () => {
  test('is up to date with the schema', async () => {
    const committed = readFileSync(GENERATED_FILE, 'utf8');
    const fresh = await generatePolicyValidator(schemaText);
    if (committed !== fresh) {
      throw new Error(
        `src/policy/generated/validate-policy.ts is stale: schemas/firewall.schema.json (or ajv) ` +
          `changed since it was generated. Regenerate it with \`${REGENERATE_COMMAND}\` and commit it.`,
      );
    }
  });

  test('generation is deterministic', async () => {
    expect(await generatePolicyValidator(schemaText)).toBe(
      await generatePolicyValidator(schemaText),
    );
  });

  test('a run needs nothing from ajv: no import but of types, no require', () => {
    const committed = readFileSync(GENERATED_FILE, 'utf8');
    const imports = committed.split('\n').filter((line) => /^\s*import\b/.test(line));
    expect(imports).toEqual(["import type { ErrorObject } from 'ajv/dist/2020.js';"]);
    expect(committed).not.toMatch(/\brequire\(/);
  });

  test('policySchema() is the schema file', () => {
    expect(policySchema()).toEqual(JSON.parse(schemaText));
  });
});

describe('errors are those of ajv compiling the schema at run time', () => {
  const { validate: compiled } = compilePolicySchema(JSON.parse(schemaText));
  const compiledErrors = (value: unknown): unknown[] =>
    compiled(value) ? [] : [...(compiled.errors ?? [])];
  const same = (value: unknown): void => {
    expect(schemaErrors(value)).toEqual(compiledErrors(value));
  };

  const policyFiles = ['examples', 'test/fixtures/golden'].flatMap((dir) =>
    readdirSync(new URL(dir, ROOT), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.yaml'))
      .map((file) => `${dir}/${file}`),
  );

  test.each(policyFiles)('%s', (file) => {
    same(parse(readFileSync(new URL(file, ROOT), 'utf8')));
  });

  const broken: [string, unknown][] = [
    ['not a mapping', ['version', 1]],
    ['missing version', { containers: {} }],
    ['other version', { version: 2, containers: { bogus: 1 } }],
    ['unknown keys', { version: 1, container: {}, containers: { g: { ingres: [] } } }],
    ['bad enum', { version: 1, defaults: { ingress: 'deny', egress: 'host' } }],
    [
      'bad names and lengths',
      {
        version: 1,
        ipsets: {
          'a b': { entries: [] },
          ['x'.repeat(40)]: { family: 'ipv5', type: 'list:set', entries: 'x' },
          ext: { external: true, name: 'moat:x'.repeat(10) },
          ext2: { external: true },
          ext3: { external: false, name: 'n' },
        },
        containers: { 'we b': { select: { name: 'ghost\nx' } }, ['g'.repeat(70)]: {} },
      },
    ],
    [
      'rules',
      {
        version: 1,
        containers: {
          g: {
            select: { name: 'g', label: 'a=b', compose: { project: 'p' } },
            ingress: [{ ports: [0, '80/sctp', 'all'], from: [] }, { form: ['host'] }, 'x'],
            egress: { default: 'maybe', allow: [{ to: 'host', ports: [] }, { ports: 1 }] },
          },
          h: { ingress: { ports: 1 }, egress: [] },
          i: { select: {}, egress: { allow: [], deny: [{ to: ['any'] }] } },
        },
      },
    ],
  ];
  test.each(broken)('%s', (_name, value) => {
    expect(schemaErrors(value).length).toBeGreaterThan(0);
    same(value);
  });

  test('random policy-shaped values', () => {
    const token = fc.oneof(
      fc.constantFrom(
        'host',
        'any',
        'all',
        'ipset:a',
        'container:g',
        '10.0.0.0/8',
        '2001:db8::/32',
      ),
      fc.constantFrom('2368', '2368/tcp', '9000/udp', '8000-8100/tcp', 'allow', 'deny', 'ipv4'),
      fc.string({ maxLength: 12 }),
      fc.integer({ min: -5, max: 70000 }),
      fc.boolean(),
      fc.constant(null),
    );
    const node: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        token,
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(
          fc.constantFrom(
            ...['version', 'defaults', 'ipsets', 'containers', 'select', 'name', 'label'],
            ...['compose', 'ingress', 'egress', 'ports', 'from', 'to', 'allow', 'default'],
            ...['family', 'type', 'entries', 'external', 'project', 'service', 'g', 'x y'],
          ),
          tie('node'),
          { maxKeys: 4 },
        ),
      ),
    })).node;
    fc.assert(
      fc.property(node, (value) => {
        same(value);
      }),
      { numRuns: 500 },
    );
  });
});

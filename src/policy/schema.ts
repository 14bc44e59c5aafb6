/**
 * The JSON Schema of firewall.yaml. The schema file is the single source of the file's shape; it
 * lives at the package root (schemas/) so editors can use it. A run checks values with the
 * validator ajv generated from it ahead of time (./generated/, `node
 * scripts/gen-schema-validator.mjs`): no run loads ajv's compiler or compiles the schema.
 */
import { readFileSync } from 'node:fs';
import type { ErrorObject } from 'ajv/dist/2020.js';
import { validatePolicy } from './generated/validate-policy.js';

/**
 * `../../schemas/` resolves to the schema from src/policy (jest) and dist/policy (built), not
 * from the bundle in dist/bundle/: only tests and tools use it, never a run.
 */
export const SCHEMA_URL = new URL('../../schemas/firewall.schema.json', import.meta.url);

/** The schema document, read from the package: for tests and tools, never needed by a run. */
export function policySchema(): unknown {
  return JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as unknown;
}

/** Every way `value` breaks the schema (empty when it fits). */
export function schemaErrors(value: unknown): readonly ErrorObject[] {
  return validatePolicy(value) ? [] : [...(validatePolicy.errors ?? [])];
}

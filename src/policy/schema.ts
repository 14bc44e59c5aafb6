/**
 * The JSON Schema of firewall.yaml, compiled once on first use. The schema file is the single
 * source of the file's shape; it lives at the package root (schemas/) so editors can use it,
 * and `../../schemas/` resolves to it from both src/policy (jest) and dist/policy (built).
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';

export const SCHEMA_URL = new URL('../../schemas/firewall.schema.json', import.meta.url);

/** Annotations for people and editors (VS Code, yaml-language-server); ajv only carries them. */
const MESSAGE_KEYWORDS = ['errorMessage', 'patternErrorMessage'];

let compiled: ValidateFunction | undefined;

export function policySchema(): unknown {
  return JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as unknown;
}

function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv2020({
      allErrors: true,
      verbose: true,
      strict: true,
      allowUnionTypes: true,
    });
    ajv.addVocabulary(MESSAGE_KEYWORDS);
    compiled = ajv.compile(policySchema() as object);
  }
  return compiled;
}

/** Every way `value` breaks the schema (empty when it fits). */
export function schemaErrors(value: unknown): readonly ErrorObject[] {
  const validate = validator();
  return validate(value) ? [] : [...(validate.errors ?? [])];
}

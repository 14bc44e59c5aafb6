/** Types of scripts/gen-schema-validator.mjs, for the test that keeps the generated file fresh. */
import type { Ajv2020, ValidateFunction } from 'ajv/dist/2020.js';

export const SCHEMA_FILE: URL;
export const GENERATED_FILE: URL;
export const REGENERATE_COMMAND: string;
export const AJV_OPTIONS: {
  readonly allErrors: boolean;
  readonly verbose: boolean;
  readonly strict: boolean;
  readonly allowUnionTypes: boolean;
};
export const MESSAGE_KEYWORDS: readonly string[];
export function compilePolicySchema(schema: unknown): {
  ajv: Ajv2020;
  validate: ValidateFunction;
};
export function generatePolicyValidator(schemaText: string): Promise<string>;

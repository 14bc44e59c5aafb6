/** Types of scripts/gen-cli-docs.mjs, for test/package/cli-docs.test.ts. */
import type { Command } from 'commander';

export interface CliOption {
  flags: string[];
  term: string;
  description: string;
  value?: string;
  choices?: string[];
  env?: string;
}
export interface CliArgument {
  term: string;
  name: string;
  required: boolean;
  description: string;
}
export interface CliCommand {
  name: string;
  term: string;
  usage: string;
  summary: string;
  description: string;
  argumentsListed: boolean;
  arguments: CliArgument[];
  options: CliOption[];
}
export interface CliModel {
  name: string;
  version: string;
  usage: string;
  description: string;
  options: CliOption[];
  commands: CliCommand[];
}

export const CLI_MODULE: URL;
export function loadProgram(): Promise<Command>;
export function cliModel(program: Command): CliModel;
export function renderMan(model: CliModel, meta: { date: string }): string;
export function renderBash(model: CliModel): string;
export function renderZsh(model: CliModel): string;

/**
 * `moat drops`: what moat's rules dropped. Without a log, the kernel's counters per policy rule
 * (as `moat status` shows them). With `--line` or `--log`, each line moat's NFLOG rules logged
 * (through ulogd2: its LOGEMU or JSON output) read back to the policy rule that dropped it:
 * "dropped by ghost ingress rule 1 (firewall.yaml:21:9): from [host] only". `--follow` keeps
 * reading the log as it grows.
 */
import type { Readable } from 'node:stream';
import type { RuleOrigin } from '../compile/model.js';
import { ExitCode, UserError } from '../core/errors.js';
import { openHost } from './host-state.js';
import {
  dropLines,
  dropOrigins,
  dropsDocument,
  explainDrop,
  packetWords,
  parseLoggedDrop,
  type DropExplanation,
  type Locate,
} from '../plan/drop-words.js';
import { pathLabel } from '../plan/drops.js';
import type { Policy } from '../policy/model.js';
import { desiredFor, type Context, type HostOptions } from './context.js';
import { policyLocate, readDropReport } from './drop-counters.js';
import { loadValidPolicy } from './policy-input.js';
import { policyName } from './policy-path.js';

export interface DropsOptions extends HostOptions {
  readonly file: string;
  /** One logged line to explain. */
  readonly line?: string;
  /** A log file to explain every moat line of; `-` reads `stdin`. */
  readonly log?: string;
  readonly follow: boolean;
  readonly stdin?: Readable;
  /** Stops `--follow`. */
  readonly signal?: AbortSignal;
}

function explanationDocument(e: DropExplanation, locate: Locate): object {
  return {
    time: e.drop.packet.time ?? null,
    packet: e.drop.packet,
    drop_id: e.drop.dropId,
    logged_as: e.drop.hint ?? null,
    rules:
      e.origins?.map((o: RuleOrigin) => ({
        rule: pathLabel(o.path),
        path: o.path,
        position: locate(o.path) ?? null,
      })) ?? null,
    explanation: e.words,
  };
}

function explanationText(e: DropExplanation): string {
  const time = e.drop.packet.time === undefined ? '' : `${e.drop.packet.time} `;
  return `${time}${packetWords(e.drop.packet)}: ${e.words}`;
}

interface Explainer {
  readonly policy: Policy;
  readonly origins: ReadonlyMap<string, readonly RuleOrigin[]>;
  readonly locate: Locate;
}

/** Explains one line; undefined when it is not a line moat logged. */
function explainLine(line: string, x: Explainer, json: boolean): string | undefined {
  const drop = parseLoggedDrop(line);
  if (drop === undefined) return undefined;
  const e = explainDrop(drop, x.policy, x.origins, x.locate);
  return json ? JSON.stringify(explanationDocument(e, x.locate)) : explanationText(e);
}

/** Lines go out as they are read (a followed log has no end): one per logged drop. */
async function explainLog(ctx: Context, options: DropsOptions, x: Explainer): Promise<number> {
  const json = ctx.view.kind !== 'text';
  const { fileLines, streamLines } = await import('../host/log-lines.js');
  const source =
    options.log === '-'
      ? streamLines(options.stdin ?? failNoStdin())
      : fileLines(options.log ?? '-', {
          follow: options.follow,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
  for await (const line of source) {
    const out = explainLine(line, x, json);
    if (out !== undefined) ctx.io.out(`${out}\n`);
  }
  return ExitCode.ok;
}

function failNoStdin(): never {
  throw new UserError('no standard input to read the log from', 'usage');
}

export async function dropsCommand(ctx: Context, options: DropsOptions): Promise<number> {
  const { policy, text } = await loadValidPolicy(ctx, { file: options.file });
  const host = await openHost(ctx, options.backend);
  const [live, inventory, system] = await Promise.all([
    host.readLive(),
    host.readInventory(),
    host.readSystem(),
  ]);
  // The listeners are left out: explaining drops never refuses over a host service.
  const interfaces = system.interfaces === undefined ? {} : { interfaces: system.interfaces };
  const desired = desiredFor(policy, inventory, live, interfaces);
  const locate = policyLocate(policyName(options.file), text);
  const explainer: Explainer = { policy, origins: dropOrigins(desired), locate };
  if (options.line !== undefined) {
    const drop = parseLoggedDrop(options.line);
    if (drop === undefined)
      throw new UserError(
        'that line is not one moat logged: it has no `moat-drop <id>` prefix',
        'not-a-drop',
      );
    const e = explainDrop(drop, policy, explainer.origins, locate);
    ctx.view.result(
      () => `${explanationText(e)}\n`,
      () => explanationDocument(e, locate),
    );
    return ExitCode.ok;
  }
  if (options.log !== undefined) return explainLog(ctx, options, explainer);
  const report = await readDropReport(host.runner, host.backend, desired, live);
  ctx.view.result(
    () => dropLines(report, locate).join('\n') + '\n',
    () => dropsDocument(report, locate),
  );
  return ExitCode.ok;
}

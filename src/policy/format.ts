/**
 * A diagnostic as a person reads it: `FILE:LINE:COL: error: message` and a short code frame
 * of the offending line with the token underlined. Pure.
 */
import type { Diagnostic } from '../core/diagnostic.js';

const ANSI = {
  red: '\u001b[31m',
  yellow: '\u001b[33m',
  bold: '\u001b[1m',
  dim: '\u001b[2m',
  reset: '\u001b[0m',
};
/** Long lines (minified or binary input) are cut to a window around the column. */
const FRAME_WIDTH = 100;

function lineAt(text: string, line: number): string | undefined {
  let start = 0;
  for (let n = 1; n < line; n++) {
    const next = text.indexOf('\n', start);
    if (next === -1) return undefined;
    start = next + 1;
  }
  const end = text.indexOf('\n', start);
  return text.slice(start, end === -1 ? text.length : end).replace(/\r$/, '');
}

/** One visible character per source character, so the caret stays under the column. */
function printable(line: string): string {
  return line.replace(/\t/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '\ufffd');
}

/** The length of the token starting at `index`: a quoted string, or up to a YAML delimiter. */
function tokenLength(line: string, index: number): number {
  const first = line[index];
  if (first === undefined) return 1;
  if (first === '"' || first === "'") {
    for (let i = index + 1; i < line.length; i++) {
      if (line[i] === '\\' && first === '"') i++;
      else if (line[i] === first) return i - index + 1;
    }
    return line.length - index;
  }
  let end = index;
  while (end < line.length) {
    const c = line[end] ?? '';
    if (/[\s,\]}]/.test(c) || (c === ':' && /\s|$/.test(line[end + 1] ?? ''))) break;
    if (c === '#' && end > index && /\s/.test(line[end - 1] ?? '')) break;
    end++;
  }
  return Math.max(1, end - index);
}

export function formatDiagnostic(
  d: Diagnostic,
  text: string,
  options: { color?: boolean } = {},
): string {
  const paint = (code: string, s: string): string =>
    options.color === true ? `${code}${s}${ANSI.reset}` : s;
  const severityColor = d.severity === 'error' ? ANSI.red : ANSI.yellow;
  const head = `${paint(ANSI.bold, `${d.file}:${d.line}:${d.column}:`)} ${paint(severityColor, `${d.severity}:`)} ${d.message}`;
  const source = lineAt(text, d.line);
  if (source === undefined) return head;
  const index = Math.min(Math.max(0, d.column - 1), source.length);
  const length = Math.min(tokenLength(source, index), FRAME_WIDTH / 2);
  let shown = printable(source);
  let caretAt = index;
  if (shown.length > FRAME_WIDTH) {
    const from = Math.max(0, Math.min(index - FRAME_WIDTH / 4, shown.length - FRAME_WIDTH));
    const cut = shown.slice(from, from + FRAME_WIDTH);
    shown = `${from > 0 ? '…' : ''}${cut}${from + FRAME_WIDTH < source.length ? '…' : ''}`;
    caretAt = index - from + (from > 0 ? 1 : 0);
  }
  const gutter = String(d.line);
  const pad = ' '.repeat(gutter.length);
  const bar = paint(ANSI.dim, '|');
  return [
    head,
    ` ${paint(ANSI.dim, gutter)} ${bar} ${shown.trimEnd()}`,
    ` ${pad} ${bar} ${' '.repeat(caretAt)}${paint(severityColor, '^'.repeat(length))}`,
  ].join('\n');
}

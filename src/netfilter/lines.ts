/** The lines of a tool's output, as the save parsers read them. Pure. */

/**
 * Splits on newlines, drops the one empty string a final newline leaves behind, and strips a
 * trailing carriage return from each line.
 */
export function outputLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.endsWith('\r')) lines[i] = line.slice(0, -1);
  }
  return lines;
}

/**
 * promtool, Prometheus's own checker of the text exposition format: on PATH, or unpacked from
 * Debian's prometheus package by scripts/install-test-deps.sh (its server is never installed).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CACHED = `${process.env.MOAT_PROMTOOL_CACHE ?? '/var/cache/moat-test-promtool'}/usr/bin/promtool`;

export function promtoolPath(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim();
  return existsSync(CACHED) ? CACHED : undefined;
}

/** `promtool check metrics` on a textfile's content: exit status and what it said. */
export function checkMetrics(promtool: string, text: string): { status: number; output: string } {
  const result = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: result.status ?? -1, output: `${result.stdout}${result.stderr}` };
}

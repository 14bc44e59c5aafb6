/**
 * The host's network facts the packet-path evaluator needs beyond netfilter and Docker's
 * containers: addresses, routes, routing rules, listening sockets, docker-proxy targets, a few
 * sysctls, nftables tables and Docker's firewall backend. Each is kept as its tool printed it
 * (a snapshot writes them to files); src/explain/capture.ts parses them.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SubprocessError } from '../core/errors.js';
import type { CommandRunner } from '../core/runner.js';
import type { DockerEndpoint } from '../docker/endpoint.js';
import { readDockerFirewall } from '../docker/inventory.js';
import {
  CAPTURE_FILES,
  sysctlKeys,
  type CaptureKey,
  type NetworkCapture,
} from '../explain/capture.js';
import { parseIpAddr, parseSockets } from '../explain/parse-host.js';

/** stdout when the program ran and succeeded; undefined when it is missing or failed. */
export async function optional(
  runner: CommandRunner,
  command: string,
  args: readonly string[],
): Promise<string | undefined> {
  try {
    const result = await runner(command, args);
    return result.exitCode === 0 ? result.stdout : undefined;
  } catch (error) {
    if (error instanceof SubprocessError) return undefined;
    throw error;
  }
}

/** The network facts, each as its tool printed it. */
export async function captureNetwork(
  runner: CommandRunner,
  endpoint: DockerEndpoint,
): Promise<NetworkCapture> {
  const [addresses, routes4, routes6, rules4, rules6, sockets, nftTables, dockerInfo] =
    await Promise.all([
      optional(runner, 'ip', ['-j', 'addr', 'show']),
      optional(runner, 'ip', ['-j', 'route', 'show', 'table', 'main']),
      optional(runner, 'ip', ['-j', '-6', 'route', 'show', 'table', 'main']),
      optional(runner, 'ip', ['-j', 'rule', 'show']),
      optional(runner, 'ip', ['-j', '-6', 'rule', 'show']),
      optional(runner, 'ss', ['-Hlntup']),
      optional(runner, 'nft', ['-j', 'list', 'tables']),
      readDockerFirewall(endpoint).then(
        (info) => JSON.stringify(info, null, 2) + '\n',
        () => undefined,
      ),
    ]);
  const names =
    addresses === undefined
      ? []
      : parseIpAddr(addresses)
          .map((i) => i.name)
          .filter((n) => /^[\w.-]+$/.test(n));
  const proxyPids =
    sockets === undefined
      ? []
      : parseSockets(sockets)
          .filter((s) => s.process === 'docker-proxy')
          .map((s) => String(s.pid));
  const [sysctl, proxies] = await Promise.all([
    optional(runner, 'sysctl', ['-e', ...sysctlKeys(names)]),
    proxyPids.length === 0
      ? Promise.resolve('')
      : optional(runner, 'ps', ['-o', 'pid=,args=', '-p', [...new Set(proxyPids)].join(',')]),
  ]);
  const capture: Partial<Record<CaptureKey, string>> = {};
  const entries: [CaptureKey, string | undefined][] = [
    ['addresses', addresses],
    ['routes4', routes4],
    ['routes6', routes6],
    ['rules4', rules4],
    ['rules6', rules6],
    ['sockets', sockets],
    ['proxies', proxies],
    ['sysctl', sysctl],
    ['nftTables', nftTables],
    ['dockerInfo', dockerInfo],
  ];
  for (const [key, text] of entries) if (text !== undefined) capture[key] = text;
  return capture;
}

/** The capture's files that exist in a snapshot directory. */
export async function readCapture(dir: string): Promise<NetworkCapture> {
  const capture: Partial<Record<CaptureKey, string>> = {};
  await Promise.all(
    (Object.keys(CAPTURE_FILES) as CaptureKey[]).map(async (key) => {
      try {
        capture[key] = await readFile(join(dir, CAPTURE_FILES[key]), 'utf8');
      } catch {
        // Not captured (an older snapshot): the evaluator says what it could not know.
      }
    }),
  );
  return capture;
}

/** Writes a capture's files into a snapshot directory (ip-addr.json is the snapshot's own). */
export async function writeCapture(dir: string, capture: NetworkCapture): Promise<void> {
  for (const key of Object.keys(capture) as CaptureKey[]) {
    const text = capture[key];
    if (text !== undefined && key !== 'addresses')
      await writeFile(join(dir, CAPTURE_FILES[key]), text);
  }
}

/**
 * Probes for end-to-end tests: can this container open a TCP connection and get an HTTP answer,
 * and what HTTP status does a client namespace get (optionally from one of its own addresses).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { NetNs } from './netns.js';

/** Something that runs the docker CLI against the sandbox's daemon (a DockerSandbox). */
export interface DockerRunner {
  docker(args: readonly string[], input?: string): string;
}

/**
 * Whether `container` gets an HTTP answer from ADDRESS:PORT. Runs busybox nc inside it (busybox
 * wget segfaults in the scratch image); `-w 3` bounds the connect, and the server closes after
 * answering an HTTP/1.0 request.
 */
export function httpFromContainer(
  runner: DockerRunner,
  container: string,
  address: string,
  port = 80,
): boolean {
  const out = runner.docker([
    'exec',
    container,
    'sh',
    '-c',
    `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${address} ${port} || true`,
  ]);
  return /^HTTP\/1\.[01] \d{3}/.test(out);
}

/** curl in `ns`, printing only the HTTP status of `url` (a dropped SYN fails at the connect timeout). */
function curlStatusArgs(
  ns: NetNs,
  url: string,
  fromAddress: string | undefined,
  connectSeconds: number,
  maxSeconds: number,
): string[] {
  return [
    `--net=${ns.path}`,
    'curl',
    '-s',
    '-g',
    // The links are veths: a handshake takes well under a millisecond.
    '--connect-timeout',
    String(connectSeconds),
    '-m',
    String(maxSeconds),
    ...(fromAddress === undefined ? [] : ['--interface', fromAddress]),
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    url,
  ];
}

/** curl's status output, or '000' (curl's own word) when nothing answered. */
const statusOf = (stdout: string): string => (stdout.trim() === '' ? '000' : stdout.trim());

/**
 * The HTTP status a client in `ns` gets ('000' = not reached), optionally from one of its own
 * addresses (`curl --interface`).
 */
export function httpStatusIn(ns: NetNs, url: string, fromAddress?: string, maxSeconds = 3): string {
  const result = spawnSync('nsenter', curlStatusArgs(ns, url, fromAddress, 1.5, maxSeconds), {
    encoding: 'utf8',
    timeout: (maxSeconds + 5) * 1000,
  });
  return statusOf(result.stdout);
}

/**
 * httpStatusIn without blocking the event loop, so probes can run at once or while moat runs:
 * a one-second connect timeout, two seconds in all ('000' = not reached).
 */
export function httpStatusInAsync(ns: NetNs, url: string, fromAddress?: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', curlStatusArgs(ns, url, fromAddress, 1, 2), {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(statusOf(out));
    });
  });
}

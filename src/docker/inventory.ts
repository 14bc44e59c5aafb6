/**
 * Reads the Docker inventory from the Engine API over its unix socket (node:http, no client
 * library). Negotiates the API version first, so a daemon older or newer than moat answers in a
 * shape moat knows.
 */
import { request } from 'node:http';
import { MoatError, UserError } from '../core/errors.js';
import { daemonFromApi, FIREWALL_BACKEND_API_VERSION } from './daemon.js';
import type { DockerEndpoint } from './endpoint.js';
import type { Inventory } from './model.js';
import { inventoryFromApi } from './normalize.js';
import { containersToInspect, withRoutedBindings } from './routed.js';

/** The newest Engine API version whose answers moat has been checked against. */
export const NEWEST_KNOWN_API_VERSION = '1.43';
/** Older daemons lack fields moat reads (e.g. GlobalIPv6Address in the list answer). */
export const OLDEST_SUPPORTED_API_VERSION = '1.24';

const DEFAULT_TIMEOUT_MS = 10_000;
// The answers are a few kB per container; a bound keeps a confused peer from exhausting memory.
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

const CHECK =
  'Is dockerd running? Is DOCKER_HOST right (unix:///path/to/docker.sock)? Are you root or in the docker group?';

interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

function get(socketPath: string, path: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, path, method: 'GET', headers: { Host: 'docker', Accept: 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) {
            req.destroy(
              new UserError(
                `the Docker daemon at ${socketPath} sent more than ${MAX_ANSWER_BYTES} bytes for GET ${path}`,
                'docker-api',
              ),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', () => {
          reject(
            new UserError(
              `the Docker daemon at ${socketPath} broke off its answer to GET ${path}. ${CHECK}`,
              'docker-unreachable',
            ),
          );
        });
      },
    );
    req.setTimeout(timeoutMs, () => {
      req.destroy(
        new UserError(
          `the Docker daemon at ${socketPath} did not answer GET ${path} within ${timeoutMs} ms. ${CHECK}`,
          'docker-unreachable',
        ),
      );
    });
    req.on('error', (error) => {
      reject(error instanceof MoatError ? error : connectionError(socketPath, error));
    });
    req.end();
  });
}

function connectionError(socketPath: string, error: Error): UserError {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return new UserError(
        `cannot reach the Docker daemon: the socket ${socketPath} does not exist. ${CHECK}`,
        'docker-unreachable',
      );
    case 'EACCES':
    case 'EPERM':
      return new UserError(
        `cannot reach the Docker daemon: permission denied on ${socketPath}. Run moat as root or as a member of the docker group.`,
        'docker-unreachable',
      );
    case 'ECONNREFUSED':
      return new UserError(
        `cannot reach the Docker daemon: nothing listens on ${socketPath} (a stale socket?). ${CHECK}`,
        'docker-unreachable',
      );
    case 'ENOTSOCK':
      return new UserError(
        `cannot reach the Docker daemon: ${socketPath} is not a socket. Is DOCKER_HOST right?`,
        'docker-unreachable',
      );
    default:
      return new UserError(
        `cannot reach the Docker daemon at ${socketPath}: ${error.message}. ${CHECK}`,
        'docker-unreachable',
      );
  }
}

function daemonError(socketPath: string, path: string, answer: Answer): UserError {
  let detail = answer.body.trim();
  try {
    const parsed: unknown = JSON.parse(answer.body);
    if (typeof parsed === 'object' && parsed !== null && 'message' in parsed)
      detail = String(parsed.message);
  } catch {
    // not JSON: show the text as it came
  }
  if (detail.length > 300) detail = `${detail.slice(0, 300)}…`;
  return new UserError(
    `the Docker daemon at ${socketPath} answered ${answer.status} to GET ${path}${detail === '' ? '' : `: ${detail}`}`,
    'docker-daemon',
  );
}

async function getJson(socketPath: string, path: string, timeoutMs: number): Promise<unknown> {
  const answer = await get(socketPath, path, timeoutMs);
  if (answer.status < 200 || answer.status > 299) throw daemonError(socketPath, path, answer);
  return parsedJson(socketPath, path, answer);
}

function parsedJson(socketPath: string, path: string, answer: Answer): unknown {
  try {
    return JSON.parse(answer.body) as unknown;
  } catch {
    throw new MoatError(
      `the Docker daemon at ${socketPath} answered GET ${path} with something that is not JSON`,
      { code: 'docker-api', source: 'user' },
    );
  }
}

function parseVersion(text: string): [number, number] | undefined {
  const match = /^(\d+)\.(\d+)$/.exec(text.trim());
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2])];
}

function older(a: [number, number], b: [number, number]): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

/**
 * The API version to speak: the lower of the daemon's and the newest moat knows (for one
 * endpoint, `newestKnown`). Pure, exported for tests.
 */
export function negotiateApiVersion(
  daemonVersion: string,
  newestKnown: string = NEWEST_KNOWN_API_VERSION,
): string {
  const daemon = parseVersion(daemonVersion);
  const newest = parseVersion(newestKnown);
  const oldest = parseVersion(OLDEST_SUPPORTED_API_VERSION);
  if (daemon === undefined || newest === undefined || oldest === undefined)
    throw new MoatError(
      `the Docker daemon reported an API version moat cannot read: "${daemonVersion}"`,
      {
        code: 'docker-api',
        source: 'user',
      },
    );
  if (older(daemon, oldest))
    throw new UserError(
      `the Docker daemon speaks API ${daemonVersion}; moat needs ${OLDEST_SUPPORTED_API_VERSION} or newer`,
      'docker-unsupported',
    );
  return older(daemon, newest) ? `${daemon[0]}.${daemon[1]}` : newestKnown;
}

/** The daemon's API version and release, as its first answer tells them. */
interface DaemonVersion {
  readonly apiVersion: string;
  readonly release: string;
}

function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * `GET /_ping` answers in about 2 ms, with the API version and (in `Server: Docker/29.7.2
 * (linux)`) the release in its headers; `GET /version` asks containerd and runc for theirs and
 * takes 50-70 ms (measured on 20.10 and 29.7.2). A daemon whose ping lacks them gets /version,
 * which is unversioned and has answered on every daemon since API 1.0.
 */
async function daemonVersion(socketPath: string, timeoutMs: number): Promise<DaemonVersion> {
  const ping = await get(socketPath, '/_ping', timeoutMs);
  const pinged = header(ping, 'api-version');
  const server = /^Docker\/(\S+)/.exec(header(ping, 'server') ?? '')?.[1];
  if (ping.status >= 200 && ping.status <= 299 && pinged !== undefined && server !== undefined)
    return { apiVersion: pinged, release: server };
  const version = await getJson(socketPath, '/version', timeoutMs);
  const field = (name: string): unknown =>
    typeof version === 'object' && version !== null && name in version
      ? (version as Record<string, unknown>)[name]
      : undefined;
  const apiVersion = field('ApiVersion');
  if (typeof apiVersion !== 'string')
    throw new MoatError(
      `the Docker daemon at ${socketPath} answered GET /version without an ApiVersion`,
      { code: 'docker-api', source: 'user' },
    );
  const release = field('Version');
  return { apiVersion, release: typeof release === 'string' ? release : 'unknown' };
}

/** The Engine API's own answers, kept raw so a snapshot holds exactly what the daemon said. */
export interface DockerAnswers {
  readonly apiVersion: string;
  readonly containers: unknown;
  readonly networks: unknown;
  /**
   * `GET /info`, asked in the version that reports the firewall backend; from daemons older
   * than that (which have no backend but iptables) only `{ServerVersion}`, from their first answer.
   */
  readonly info: unknown;
}

export async function readDockerAnswers(
  endpoint: DockerEndpoint,
  options?: { timeoutMs?: number },
): Promise<DockerAnswers> {
  const timeoutMs = options?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { socketPath } = endpoint;
  const daemon = await daemonVersion(socketPath, timeoutMs);
  const apiVersion = negotiateApiVersion(daemon.apiVersion);
  // /info costs as much as /version: ask it only where it can name a backend but iptables.
  const infoVersion = negotiateApiVersion(daemon.apiVersion, FIREWALL_BACKEND_API_VERSION);
  const [containers, networks, info] = await Promise.all([
    getJson(socketPath, `/v${apiVersion}/containers/json`, timeoutMs),
    getJson(socketPath, `/v${apiVersion}/networks`, timeoutMs),
    infoVersion === FIREWALL_BACKEND_API_VERSION
      ? getJson(socketPath, `/v${infoVersion}/info`, timeoutMs)
      : { ServerVersion: daemon.release },
  ]);
  const routed = await inspectRouted(socketPath, apiVersion, containers, networks, timeoutMs);
  return { apiVersion, containers: withRoutedBindings(containers, routed), networks, info };
}

/**
 * The inspect answers of the containers on networks that route a family (routed.ts: Docker 29
 * lists none of their routed bindings). A container gone since the list (404) is left out.
 */
async function inspectRouted(
  socketPath: string,
  apiVersion: string,
  containers: unknown,
  networks: unknown,
  timeoutMs: number,
): Promise<Map<string, unknown>> {
  const ids = containersToInspect(inventoryFromApi(containers, networks));
  const answers = await Promise.all(
    ids.map(async (id) => {
      const path = `/v${apiVersion}/containers/${encodeURIComponent(id)}/json`;
      const answer = await get(socketPath, path, timeoutMs);
      if (answer.status === 404) return undefined;
      if (answer.status < 200 || answer.status > 299) throw daemonError(socketPath, path, answer);
      return [id, parsedJson(socketPath, path, answer)] as const;
    }),
  );
  return new Map(answers.filter((a) => a !== undefined));
}

/** The inventory of the daemon's answers, with the daemon's release and firewall backend. */
export function inventoryFromAnswers(answers: Omit<DockerAnswers, 'apiVersion'>): Inventory {
  return {
    ...inventoryFromApi(answers.containers, answers.networks),
    daemon: daemonFromApi(answers.info),
  };
}

export async function readInventory(
  endpoint: DockerEndpoint,
  options?: { timeoutMs?: number },
): Promise<Inventory> {
  return inventoryFromAnswers(await readDockerAnswers(endpoint, options));
}

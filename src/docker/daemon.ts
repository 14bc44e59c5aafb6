/**
 * The daemon facts moat reports and checks: its release and the firewall backend it programs,
 * from the Engine API's `GET /info`. Pure: the answer is a parsed JSON value.
 *
 * `FirewallBackend.Driver` is `iptables`, `iptables+firewalld` or (Docker 29+) `nftables`.
 * Daemons before API 1.49 do not report it; they only have the iptables backend.
 */
import { MoatError } from '../core/errors.js';
import { isObject } from '../core/json.js';

export interface DockerDaemon {
  /** `29.7.2`, `20.10.24+dfsg1`, as the daemon says. */
  readonly version: string;
  /** `iptables`, `iptables+firewalld`, `nftables`: the daemon's word, kept as it is. */
  readonly firewallBackend: string;
}

/** The API version from which `GET /info` carries FirewallBackend (measured on 29.7.2). */
export const FIREWALL_BACKEND_API_VERSION = '1.49';

/** The fields of `GET /info` moat reads; a snapshot keeps exactly these. */
export const INFO_FIELDS = ['ServerVersion', 'FirewallBackend'] as const;

function malformed(what: string): MoatError {
  return new MoatError(`the Docker API answered something moat does not understand: info ${what}`, {
    code: 'docker-api',
    source: 'user',
  });
}

/** The answer of `GET /info` (or a snapshot's copy of its INFO_FIELDS) as a DockerDaemon. */
export function daemonFromApi(info: unknown): DockerDaemon {
  if (!isObject(info)) throw malformed('is not an object');
  const version = info.ServerVersion;
  if (typeof version !== 'string' || version === '') throw malformed('has no ServerVersion');
  const backend = info.FirewallBackend;
  if (backend === undefined || backend === null) return { version, firewallBackend: 'iptables' };
  if (!isObject(backend) || typeof backend.Driver !== 'string' || backend.Driver === '')
    throw malformed('FirewallBackend has no Driver');
  return { version, firewallBackend: backend.Driver };
}

/** Only the fields moat reads, for a snapshot: not the host name, ids and the rest of /info. */
export function infoForSnapshot(info: unknown): Record<string, unknown> {
  if (!isObject(info)) throw malformed('is not an object');
  return Object.fromEntries(INFO_FIELDS.filter((f) => f in info).map((f) => [f, info[f]]));
}

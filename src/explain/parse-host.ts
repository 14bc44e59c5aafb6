/**
 * What the host's tools printed (`ip -j addr|route|rule`, `ss -Hlntup`, `ps -o pid=,args=`,
 * `sysctl`, `nft -j list tables`, Docker's `GET /info`) → the HostNetwork the evaluator reads.
 * Pure; every parser is lenient about what it does not need and strict about what it does.
 */
import { UserError } from '../core/errors.js';
import type { Family } from '../policy/model.js';
import type {
  HostAddress,
  HostInterface,
  HostRoute,
  ListeningSocket,
  ProxyTarget,
} from './model.js';

export class HostFactsError extends UserError {
  constructor(what: string, why: string) {
    super(`${what}: ${why}`, 'bad-host-facts');
  }
}

function json(text: string, what: string): unknown {
  try {
    return JSON.parse(text === '' ? '[]' : text) as unknown;
  } catch {
    throw new HostFactsError(what, 'not valid JSON');
  }
}

function records(text: string, what: string): Record<string, unknown>[] {
  const value = json(text, what);
  if (!Array.isArray(value)) throw new HostFactsError(what, 'expected a JSON array');
  return value.filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null);
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** `ip -j addr show`. */
export function parseIpAddr(text: string): HostInterface[] {
  return records(text, 'ip -j addr').map((link) => {
    const flags = Array.isArray(link.flags) ? link.flags : [];
    const infos = Array.isArray(link.addr_info) ? (link.addr_info as unknown[]) : [];
    const addresses: HostAddress[] = [];
    for (const info of infos) {
      if (typeof info !== 'object' || info === null) continue;
      const i = info as Record<string, unknown>;
      const family: Family | undefined =
        i.family === 'inet' ? 'ipv4' : i.family === 'inet6' ? 'ipv6' : undefined;
      const address = str(i.local);
      if (family === undefined || address === undefined || typeof i.prefixlen !== 'number')
        continue;
      const broadcast = str(i.broadcast);
      const scope = str(i.scope);
      addresses.push({
        family,
        address,
        prefixLength: i.prefixlen,
        ...(broadcast === undefined ? {} : { broadcast }),
        ...(scope === undefined ? {} : { scope }),
      });
    }
    return { name: str(link.ifname) ?? '', up: flags.includes('UP'), addresses };
  });
}

/** `ip -j [-6] route show table main`. */
export function parseIpRoute(text: string, family: Family): HostRoute[] {
  return records(text, `ip -j ${family === 'ipv6' ? '-6 ' : ''}route`).map((r) => {
    const dst = str(r.dst) ?? 'default';
    const dev = str(r.dev);
    const gateway = str(r.gateway);
    const prefsrc = str(r.prefsrc);
    return {
      family,
      dst: dst === 'default' ? (family === 'ipv4' ? '0.0.0.0/0' : '::/0') : dst,
      type: str(r.type) ?? 'unicast',
      ...(dev === undefined ? {} : { dev }),
      ...(gateway === undefined ? {} : { gateway }),
      ...(prefsrc === undefined ? {} : { prefsrc }),
      metric: typeof r.metric === 'number' ? r.metric : 0,
    };
  });
}

/** `ip -j [-6] rule show`: the rules beyond local (0), main (32766) and default (32767). */
export function extraRoutingRules(text: string, family: Family): string[] {
  const defaults = new Map([
    [0, 'local'],
    [32766, 'main'],
    [32767, 'default'],
  ]);
  return records(text, 'ip -j rule')
    .filter((r) => {
      const plain =
        Object.keys(r).every((k) => ['priority', 'src', 'table'].includes(k)) && r.src === 'all';
      return !(plain && defaults.get(r.priority as number) === r.table);
    })
    .map((r) => `${family} ${JSON.stringify(r)}`);
}

/** `ss -Hlntup`: `tcp LISTEN 0 4096 0.0.0.0:2368 0.0.0.0:* users:(("docker-proxy",pid=1,fd=7))`. */
export function parseSockets(text: string): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    const protocol = words[0];
    if (protocol !== 'tcp' && protocol !== 'udp') continue;
    const local = words[4];
    if (local === undefined) continue;
    const m = /^(?:\[([^\]]*)\]|([^%\s]*?))(?:%(\S+))?:(\d+|\*)$/.exec(local);
    if (m === null || m[4] === '*') continue;
    const address = m[1] ?? m[2] ?? '';
    const users = /users:\(\("([^"]+)",pid=(\d+)/.exec(line);
    out.push({
      protocol,
      address: address === '' ? '*' : address,
      port: Number(m[4]),
      ...(m[3] === undefined ? {} : { device: m[3] }),
      ...(users === null ? {} : { process: users[1] ?? '', pid: Number(users[2]) }),
    });
  }
  return out;
}

/** `ps -o pid=,args= -p PIDS` of docker-proxy processes: where each forwards to. */
export function parseProxies(text: string): ProxyTarget[] {
  const out: ProxyTarget[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const args = (m[2] ?? '').split(/\s+/);
    const value = (flag: string): string | undefined => {
      const i = args.indexOf(flag);
      return i < 0 ? undefined : args[i + 1];
    };
    const protocol = value('-proto');
    const ip = value('-container-ip');
    const port = Number(value('-container-port'));
    if ((protocol !== 'tcp' && protocol !== 'udp') || ip === undefined || !Number.isInteger(port))
      continue;
    out.push({ pid: Number(m[1]), protocol, containerIp: ip, containerPort: port });
  }
  return out;
}

/** `sysctl -e KEY…`: `key = value` lines. */
export function parseSysctl(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([\w.\-/]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m !== null) out.set(m[1] ?? '', m[2] ?? '');
  }
  return out;
}

/** `nft -j list tables` → `ip filter`, `ip docker-bridges`, … */
export function parseNftTables(text: string): string[] {
  const value = json(text, 'nft -j list tables');
  const items =
    typeof value === 'object' &&
    value !== null &&
    'nftables' in value &&
    Array.isArray(value.nftables)
      ? (value.nftables as unknown[])
      : [];
  const out: string[] = [];
  for (const item of items) {
    if (typeof item !== 'object' || item === null || !('table' in item)) continue;
    const table = item.table as Record<string, unknown>;
    const family = str(table.family);
    const name = str(table.name);
    if (family !== undefined && name !== undefined) out.push(`${family} ${name}`);
  }
  return out;
}

/** Docker's `GET /info` (or the part moat keeps): the firewall backend, when it says. */
export function parseDockerInfo(text: string): string | undefined {
  const value = json(text, 'docker-info.json');
  if (typeof value !== 'object' || value === null || !('FirewallBackend' in value))
    return undefined;
  const backend = value.FirewallBackend;
  return typeof backend === 'object' && backend !== null && 'Driver' in backend
    ? str(backend.Driver)
    : undefined;
}

/**
 * Reachability in words, said in one place: who may reach a published port (computed from the
 * rules, see reach.ts) and where a group may send (the policy's egress section, as data).
 * Sources are shown in the policy's terms where the glossary knows them (`ipset:office`,
 * `container:api`), else as the kernel has them. Pure.
 */
import type { EgressExposure, EgressTarget, Glossary } from '../compile/model.js';
import type { PathReach, PortReach } from './model.js';
import type { Reach } from './reach.js';

/** `host only`, `anyone`, or `host, 198.51.100.0/24, ipset:office, container:api`. */
export function reachWords(reach: Reach, glossary: Glossary): string {
  if (reach.unknown !== undefined) return `unknown (moat cannot read the rule ${reach.unknown})`;
  if (reach.anyone) return 'anyone';
  if (reach.sources.length === 0) return 'host only';
  const names = reach.sources.map((s) => {
    if (s.startsWith('set:')) return glossary.ipsets[s.slice(4)] ?? `ipset ${s.slice(4)}`;
    return glossary.addresses[s] ?? s;
  });
  return ['host', ...new Set(names)].join(', ');
}

function pathLabel(p: PathReach): string {
  const family = p.family === 'ipv4' ? 'IPv4' : 'IPv6';
  if (p.path === 'proxy') return `${family} through docker-proxy`;
  if (p.path === 'direct') return `${family} at ${p.destination ?? 'the container'}`;
  return family;
}

/** Who may reach a publication, merging paths that agree. */
export function portReachWords(port: PortReach, when: 'now' | 'was', glossary: Glossary): string {
  const parts = port.paths.map((p) => ({
    label: pathLabel(p),
    words: reachWords(p[when], glossary),
  }));
  const distinct = [...new Set(parts.map((p) => p.words))];
  if (distinct.length <= 1) return distinct[0] ?? 'nobody (no path)';
  return distinct
    .map(
      (w) =>
        `${w} (${parts
          .filter((p) => p.words === w)
          .map((p) => p.label)
          .join(', ')})`,
    )
    .join('; ');
}

/** `ghost 2368/tcp`, `ghost 192.0.2.1:8080/tcp`, `api 80/tcp (routed)`. */
export function portName(port: PortReach): string {
  const specific = (port.hostIps ?? []).filter((ip) => ip !== '0.0.0.0' && ip !== '::');
  const at =
    specific.length > 0 && specific.length === (port.hostIps ?? []).length
      ? `${specific.map((ip) => (ip.includes(':') ? `[${ip}]` : ip)).join(',')}:`
      : '';
  return `${port.container} ${at}${port.port}/${port.protocol}${port.via === 'routed' ? ' (routed)' : ''}`;
}

function targets(list: readonly EgressTarget[]): string {
  return list
    .map((t) => {
      const to = t.to.map((d) => (d === 'any' ? 'anywhere' : d)).join(', ');
      return t.ports.length === 0 ? to : `${to} (${t.ports.join(', ')})`;
    })
    .join(', ');
}

/** `may not reach 10.0.0.0/8`, `may reach only ipset:allowed (443/tcp); never 10.0.0.0/8`. */
export function egressWords(egress: EgressExposure): string {
  const never = targets(egress.deny);
  if (egress.default === 'allow')
    return never === '' ? 'may reach anything' : `may not reach ${never}`;
  const only = targets(egress.allow);
  const allowed =
    only === '' ? 'may reach nothing (routed or to the host)' : `may reach only ${only}`;
  return never === '' ? allowed : `${allowed}; never ${never}`;
}

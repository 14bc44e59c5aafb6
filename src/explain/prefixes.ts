/**
 * Every address block the host's configuration names: in rules (`-s`, `-d`, conntrack's
 * original and reply addresses), in ipsets, in routes and on interfaces and Docker networks.
 * A class of sources ("anyone", a CIDR block) is probed once per region these cut it into, so
 * a rule that treats part of the block differently is never missed. Pure.
 */
import type { Family } from '../policy/model.js';
import { parseAddress, parsePrefix, prefixOf, type Prefix } from './address.js';
import type { HostView } from './host-view.js';

const ADDRESS_OPTIONS = new Set([
  '-s',
  '-d',
  '--ctorigsrc',
  '--ctorigdst',
  '--ctreplsrc',
  '--ctrepldst',
]);

export function prefixesNamed(view: HostView): Record<Family, Prefix[]> {
  const out: Record<Family, Prefix[]> = { ipv4: [], ipv6: [] };
  const seen = new Set<string>();
  const add = (prefix: Prefix | undefined): void => {
    if (prefix === undefined) return;
    const key = `${prefix.family} ${prefix.network} ${prefix.mask}`;
    if (seen.has(key)) return;
    seen.add(key);
    out[prefix.family].push(prefix);
  };
  const world = view.world;
  for (const ruleset of Object.values(world.netfilter.rulesets)) {
    for (const table of ruleset.tables.values()) {
      for (const chain of table.chains.values()) {
        for (const rule of chain.rules) {
          const parsed = view.parse(rule);
          if (parsed instanceof Error) continue;
          const options = [...parsed.basic, ...parsed.matches.flatMap((m) => m.options)];
          for (const o of options)
            if (ADDRESS_OPTIONS.has(o.name)) add(parsePrefix(o.values[0] ?? ''));
        }
      }
    }
  }
  for (const set of world.netfilter.ipsets.values())
    for (const m of set.members) add(parsePrefix(m));
  for (const family of ['ipv4', 'ipv6'] as const)
    for (const route of world.network.routes?.[family] ?? []) add(parsePrefix(route.dst));
  for (const iface of world.network.interfaces) {
    for (const a of iface.addresses) {
      const address = parseAddress(a.address);
      if (address !== undefined) add(prefixOf(address, a.prefixLength));
    }
  }
  for (const network of world.inventory.networks)
    for (const s of network.subnets) add(parsePrefix(s));
  return out;
}

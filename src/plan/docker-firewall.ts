/**
 * What the plan says about Docker's own firewall, which moat reads and never changes: the daemon's
 * release and firewall backend, where moat hooks, and the setups that undo Docker's accepts.
 * Pure; called by the planning pipeline after the diff.
 *
 * Under Docker 29's nftables backend, Docker accepts published and outgoing traffic in its own
 * `docker-bridges` tables. An nftables accept ends only its own base chain: every other chain on
 * the forward hook still sees the packet, and a drop there is final. So a FORWARD policy of DROP
 * in iptables (often left behind by Docker's iptables backend) or an nft forward chain with policy
 * drop silently breaks what Docker opened. moat's own rules compose for the same reason: they only
 * RETURN or DROP, never accept.
 */
import { hostFacts } from '../compile/host-facts.js';
import type { PlanWarning } from '../compile/model.js';
import type { DockerDaemon } from '../docker/daemon.js';
import type { LiveNetfilter } from '../netfilter/model.js';
import { DOCKER_NFT_TABLE, type NftBaseChain } from '../netfilter/parse-nft.js';
import { FAMILIES, type Family } from '../policy/model.js';
import type { DockerFirewall, Plan } from './model.js';

/** The code of the warnings below: a host setup that drops what Docker accepted. */
export const FORWARD_POLICY_DROP = 'forward-policy-drop';

const FAMILY_NAME: Record<Family, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };
const IPTABLES: Record<Family, string> = { ipv4: 'iptables', ipv6: 'ip6tables' };

/** iptables' FORWARD chain with policy DROP, per family, under the nftables backend. */
function forwardPolicyDrops(live: LiveNetfilter): PlanWarning[] {
  return FAMILIES.filter(
    (family) =>
      live.rulesets[family].tables.get('filter')?.chains.get('FORWARD')?.policy === 'DROP',
  ).map((family) => ({
    code: FORWARD_POLICY_DROP,
    message:
      `Docker uses its nftables firewall backend, and the ${IPTABLES[family]} FORWARD chain ` +
      `(${FAMILY_NAME[family]}) has policy DROP: it drops the traffic Docker's nftables rules accept ` +
      `(published ports, container egress). Set it to ACCEPT (${IPTABLES[family]} -P FORWARD ` +
      `ACCEPT); when it is a leftover of Docker's iptables backend, a reboot clears it too.`,
  }));
}

/** iptables-nft keeps its filter table in nft as `ip filter` / `ip6 filter`: already covered. */
function isIptablesFilter(chain: NftBaseChain, live: LiveNetfilter): boolean {
  return (
    live.backend === 'nft' &&
    (chain.family === 'ip' || chain.family === 'ip6') &&
    chain.table === 'filter' &&
    chain.name === 'FORWARD'
  );
}

/** nft base chains on the forward hook, outside Docker's tables, with policy drop. */
function nftForwardDrops(live: LiveNetfilter): PlanWarning[] {
  return (live.nftables?.baseChains ?? [])
    .filter(
      (chain) =>
        chain.hook === 'forward' &&
        chain.policy === 'drop' &&
        chain.table !== DOCKER_NFT_TABLE &&
        !isIptablesFilter(chain, live),
    )
    .map((chain) => ({
      code: FORWARD_POLICY_DROP,
      message:
        `Docker uses its nftables firewall backend, and the nftables chain ` +
        `${chain.family} ${chain.table} ${chain.name} (hook forward, policy drop) drops the ` +
        `traffic Docker's nftables rules accept (published ports, container egress). Accept ` +
        `Docker's traffic in that chain, or set its policy to accept.`,
    }));
}

/** The warnings about Docker's firewall setup; none unless Docker uses nftables. */
export function dockerFirewallWarnings(
  daemon: DockerDaemon | undefined,
  live: LiveNetfilter,
): PlanWarning[] {
  if (daemon?.firewallBackend !== 'nftables') return [];
  return [...forwardPolicyDrops(live), ...nftForwardDrops(live)];
}

/** The plan with what it says about Docker's firewall; unchanged when the daemon is unknown. */
export function withDockerFirewall(
  plan: Plan,
  daemon: DockerDaemon | undefined,
  live: LiveNetfilter,
): Plan {
  if (daemon === undefined) return plan;
  const docker: DockerFirewall = {
    version: daemon.version,
    firewallBackend: daemon.firewallBackend,
    forwardHooks: hostFacts(live).forwardHook,
  };
  return { ...plan, docker, warnings: [...plan.warnings, ...dockerFirewallWarnings(daemon, live)] };
}

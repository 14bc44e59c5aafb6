/** The few facts of the live host that compiling needs, read off its netfilter state. */
import type { LiveNetfilter } from '../netfilter/model.js';
import { FAMILIES, type Family } from '../policy/model.js';
import type { HostFacts } from './compile.js';

export function hostFacts(live: LiveNetfilter): HostFacts {
  const forwardHook = {} as Record<Family, string>;
  for (const family of FAMILIES) {
    const chains = live.rulesets[family].tables.get('filter')?.chains;
    // Where Docker made no DOCKER-USER (e.g. its IPv6 support is off), hook FORWARD itself.
    forwardHook[family] = chains?.has('DOCKER-USER') === true ? 'DOCKER-USER' : 'FORWARD';
  }
  const ipsetFamilies = new Map([...live.ipsets.values()].map((s) => [s.name, s.family] as const));
  return { forwardHook, ipsetFamilies };
}

/**
 * The benchmark's firewall.yaml: one container group per container, with ingress rules on its
 * published ports, egress rules for half of them and a managed ipset, in the shapes
 * docs/policy.md describes.
 */
import type { BenchInventory } from './host.js';

/** Index of the group whose rules the "one container changed" measurement edits. */
export function changedIndex(count: number): number {
  return Math.floor(count / 2);
}

function allowedEntries(): string[] {
  const out: string[] = [];
  for (let i = 0; i < 100; i++) out.push(`203.0.113.${i}`);
  for (let i = 0; i < 20; i++) out.push(`198.51.${100 + i}.0/24`);
  return out;
}

/**
 * @param changed when true, the group at changedIndex() also admits 192.0.2.0/24 on its ports
 *   and may reach 10.30.0.0/16: one container's rules changed.
 */
export function policyYaml(inventory: BenchInventory, changed = false): string {
  const lines: string[] = [
    'version: 1',
    'defaults:',
    '  ingress: allow',
    '  egress: allow',
    'ipsets:',
    '  allowed:',
    '    family: ipv4',
    '    type: hash:net',
    `    entries: [${allowedEntries().join(', ')}]`,
    'containers:',
  ];
  const target = changedIndex(inventory.containers.length);
  inventory.containers.forEach((c, i) => {
    const edited = changed && i === target;
    lines.push(`  ${c.name}:`, '    ingress:');
    for (const p of c.ports) {
      let from: string;
      switch (i % 4) {
        case 0:
          from = 'host';
          break;
        case 1:
          from = '198.51.100.0/24, "2001:db8:100::/64"';
          break;
        case 2:
          from = 'host, ipset:allowed';
          break;
        default:
          // the first container acts as a reverse proxy in front of the others
          from = `container:${inventory.containers[0]!.name}`;
      }
      if (edited) from += ', 192.0.2.0/24';
      lines.push(`      - ports: [${p.hostPort}/${p.protocol}]`, `        from: [${from}]`);
    }
    if (i % 2 === 0) {
      lines.push(
        '    egress:',
        '      default: deny',
        '      allow:',
        '        - to: [ipset:allowed]',
        '        - to: [10.20.0.0/16, "fd00:20::/48"]',
        '          ports: [5432/tcp, 6379/tcp]',
        ...(edited ? ['        - to: [10.30.0.0/16]'] : []),
        '      deny:',
        '        - to: [169.254.169.254]',
      );
    }
  });
  return lines.join('\n') + '\n';
}

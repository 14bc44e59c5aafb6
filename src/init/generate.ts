/**
 * `moat init`: a first firewall.yaml for the containers running now that reproduces today's
 * exposure exactly, so the first plan on the host is empty and the user tightens from there.
 * Pure: an Inventory in, the file's text out.
 *
 * Every port published on a non-loopback address is named with `from: [any]`: naming a port
 * makes it visible in the file and in `moat plan`, and `any` compiles to no rule at all.
 */
import { stringify } from 'yaml';
import type { DockerContainer, Inventory, PortProtocol } from '../docker/model.js';

/** The patterns of schemas/firewall.schema.json for group keys and container names. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const GROUP_NAME_MAX = 63;
const CONTAINER_NAME_MAX = 255;

const COMPOSE_PROJECT = 'com.docker.compose.project';
const COMPOSE_SERVICE = 'com.docker.compose.service';

/** One published host port (or a run of them) as the policy names it. */
interface PortEntry {
  readonly protocol: 'tcp' | 'udp';
  readonly first: number;
  readonly last: number;
  /** The container ports behind `first`, for the comment. */
  readonly containerPorts: readonly number[];
  readonly hostIps: readonly string[];
}

/** What `moat init` says about one running container. */
interface ContainerExposure {
  readonly container: DockerContainer;
  readonly exposed: readonly PortEntry[];
  /** `127.0.0.1:8080 → 80/tcp`: already unreachable from outside. */
  readonly loopbackOnly: readonly string[];
  /** `5000/sctp`: the policy language covers tcp and udp only. */
  readonly unsupported: readonly string[];
}

function isLoopback(hostIp: string): boolean {
  return hostIp.startsWith('127.') || hostIp === '::1';
}

function isPolicyProtocol(protocol: PortProtocol): protocol is 'tcp' | 'udp' {
  return protocol === 'tcp' || protocol === 'udp';
}

function hostAddress(hostIp: string, port: number): string {
  return hostIp.includes(':') ? `[${hostIp}]:${port}` : `${hostIp}:${port}`;
}

/** A comment never ends early: names from the Docker API could in theory hold anything. */
function commentText(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, '?');
}

/** A YAML scalar that reads back as this exact string (`true`, `123` and `null` get quoted). */
function scalar(text: string): string {
  return stringify(text, { lineWidth: 0 }).trimEnd();
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Published ports, one entry per protocol and host port, runs of ports mapped 1:1 merged. */
function exposedPorts(container: DockerContainer): PortEntry[] {
  const byPort = new Map<string, { containerPorts: Set<number>; hostIps: Set<string> }>();
  for (const p of container.ports) {
    if (isLoopback(p.hostIp) || !isPolicyProtocol(p.protocol)) continue;
    // A routed port (no host port) is reached at the container port: that is what rules name.
    const key = `${p.protocol}/${p.hostPort ?? p.containerPort}`;
    const entry = byPort.get(key) ?? { containerPorts: new Set(), hostIps: new Set() };
    entry.containerPorts.add(p.containerPort);
    entry.hostIps.add(p.hostIp);
    byPort.set(key, entry);
  }
  const singles = [...byPort.entries()]
    .map(([key, value]) => {
      const [protocol, port] = key.split('/') as ['tcp' | 'udp', string];
      return {
        protocol,
        first: Number(port),
        last: Number(port),
        containerPorts: [...value.containerPorts].sort((a, b) => a - b),
        hostIps: [...value.hostIps].sort(),
      };
    })
    .sort((a, b) => a.protocol.localeCompare(b.protocol) || a.first - b.first);

  // `-p 8000-8100:8000-8100` publishes 101 ports: name them as one range.
  const merged: PortEntry[] = [];
  for (const port of singles) {
    const previous = merged.at(-1);
    const previousTarget = previous?.containerPorts[0];
    const target = port.containerPorts[0];
    if (
      previous !== undefined &&
      previousTarget !== undefined &&
      target !== undefined &&
      previous.containerPorts.length === 1 &&
      port.containerPorts.length === 1 &&
      previous.protocol === port.protocol &&
      previous.last + 1 === port.first &&
      target - port.first === previousTarget - previous.first &&
      sameList(previous.hostIps, port.hostIps)
    ) {
      merged[merged.length - 1] = { ...previous, last: port.first };
    } else {
      merged.push(port);
    }
  }
  return merged;
}

function exposureOf(container: DockerContainer): ContainerExposure {
  const exposed = exposedPorts(container);
  const isExposed = (protocol: string, port: number): boolean =>
    exposed.some((e) => e.protocol === protocol && e.first <= port && port <= e.last);
  const loopbackOnly = new Set<string>();
  const unsupported = new Set<string>();
  for (const p of container.ports) {
    const port = p.hostPort ?? p.containerPort;
    if (!isPolicyProtocol(p.protocol)) {
      if (!isLoopback(p.hostIp)) unsupported.add(`${port}/${p.protocol}`);
    } else if (isLoopback(p.hostIp) && !isExposed(p.protocol, port)) {
      loopbackOnly.add(`${hostAddress(p.hostIp, port)} → ${p.containerPort}/${p.protocol}`);
    }
  }
  return {
    container,
    exposed,
    loopbackOnly: [...loopbackOnly].sort(),
    unsupported: [...unsupported].sort(),
  };
}

/** A group key for a container name: valid, at most 63 characters, not yet taken. */
function derivedKey(name: string, taken: ReadonlySet<string>): string {
  const base = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'container';
  let key = base.slice(0, GROUP_NAME_MAX);
  for (let n = 2; taken.has(key); n += 1) {
    const suffix = `-${n}`;
    key = base.slice(0, GROUP_NAME_MAX - suffix.length) + suffix;
  }
  return key;
}

/**
 * Container name → group key. A name that is a valid group key is its own key (the group then
 * needs no `select`); the others get a derived key that no container name claims.
 */
function groupKeys(names: readonly string[]): Map<string, string> {
  const keys = new Map<string, string>();
  const taken = new Set<string>();
  for (const name of names) {
    if (NAME_PATTERN.test(name) && name.length <= GROUP_NAME_MAX) {
      keys.set(name, name);
      taken.add(name);
    }
  }
  for (const name of names) {
    if (keys.has(name)) continue;
    const key = derivedKey(name, taken);
    keys.set(name, key);
    taken.add(key);
  }
  return keys;
}

function portLabel(entry: PortEntry): string {
  const range = entry.first === entry.last ? `${entry.first}` : `${entry.first}-${entry.last}`;
  return `${range}/${entry.protocol}`;
}

function portComment(entry: PortEntry): string {
  const target = entry.containerPorts[0] ?? entry.first;
  const targets =
    entry.first === entry.last
      ? entry.containerPorts.map((p) => `${p}/${entry.protocol}`).join(', ')
      : `${target}-${target + entry.last - entry.first}/${entry.protocol}`;
  const wildcard = entry.hostIps.every((ip) => ip === '0.0.0.0' || ip === '::');
  const where = `on ${entry.hostIps.join(' and ')}`;
  // moat's rules match the host port on every address; say so where Docker bound only one.
  const note = wildcard ? '' : ' (the rule applies to the port on every host address)';
  return `→ container ${targets}, ${where}${note}`;
}

function composeNote(container: DockerContainer): string[] {
  const project = container.labels[COMPOSE_PROJECT];
  if (project === undefined) return [];
  const service = container.labels[COMPOSE_SERVICE];
  const said =
    service === undefined
      ? `compose project ${commentText(project)}`
      : `compose project ${commentText(project)}, service ${commentText(service)}`;
  const selectable =
    NAME_PATTERN.test(project) && (service === undefined || NAME_PATTERN.test(service));
  if (!selectable) return [`# Started by ${said}.`];
  const selector =
    service === undefined
      ? `{ compose: { project: ${scalar(project)} } }`
      : `{ compose: { project: ${scalar(project)}, service: ${scalar(service)} } }`;
  return [
    `# Started by ${said}. To follow it when compose recreates or scales it:`,
    `#   select: ${selector}`,
  ];
}

function groupLines(exposure: ContainerExposure, key: string): string[] {
  const { container } = exposure;
  const notes = [
    ...composeNote(container),
    ...exposure.loopbackOnly.map(
      (p) => `# ${p} is published on loopback only: unreachable from outside, not listed.`,
    ),
    ...exposure.unsupported.map(
      (p) => `# ${p}: moat's policy covers tcp and udp only; Docker's rules alone govern it.`,
    ),
  ];
  const select = key === container.name ? [] : [`    select: { name: ${scalar(container.name)} }`];
  if (exposure.exposed.length === 0 && select.length === 0) {
    // `{}`: a group with no rules yet, ready for an egress section.
    return [
      ...notes.map((line) => `  ${line}`),
      `  ${scalar(key)}: {} # publishes no port; add \`egress:\` to limit where it may send traffic`,
    ];
  }
  const comments = notes.map((line) => `    ${line}`);
  const ingress =
    exposure.exposed.length === 0
      ? []
      : [
          '    ingress:',
          ...exposure.exposed.flatMap((entry) => [
            `      - ports: [${portLabel(entry)}] # ${portComment(entry)}`,
            '        from: [any]',
          ]),
        ];
  const noPort =
    exposure.exposed.length === 0
      ? ['    # Publishes no port; add `egress:` to limit where it may send traffic.']
      : [];
  return [`  ${scalar(key)}:`, ...comments, ...noPort, ...select, ...ingress];
}

const HEADER = [
  '# firewall.yaml written by `moat init` for the containers running on this host.',
  '#',
  "# It reproduces today's exposure exactly, so the first `moat plan` has nothing to do: every",
  '# published port is listed with `from: [any]`, which names a port without restricting it.',
  '#',
  '# Tighten it one rule at a time, checking each step with `moat plan`:',
  '#   from: [host]                  only the Docker host itself (e.g. a reverse proxy on it)',
  '#   from: [192.0.2.0/24]          one network; an IPv4 block alone refuses every IPv6 client',
  '#   from: [host, ipset:office]    an address set, see `ipsets` in docs/policy.md',
  '#   defaults.ingress: host        ports no rule names, including those of containers',
  '#                                 started later, become reachable from the host only',
  '# Egress is not restricted yet. The way that holds without moat running is a default of',
  "# deny (`defaults.egress: deny`), keyed on Docker's bridges, then allow rules per group:",
  '# a container started or recreated later is held by it from its first packet. (Write an',
  '# allow rule for your DNS resolver: egress rules cover name lookups too.) Egress limits',
  '# under `defaults.egress: allow` are keyed on container addresses and lapse for a recreated',
  '# container until moat applies again.',
  '# `moat validate` checks this file; docs/policy.md describes every key.',
  'version: 1',
  'defaults:',
  '  ingress: allow # ports no rule names stay reachable by anyone, as Docker publishes them',
  '  egress: allow # containers may send traffic anywhere; deny is the fail-closed choice',
];

/** A commented firewall.yaml whose first plan on the host `inventory` was read from is empty. */
export function initialPolicy(inventory: Inventory): string {
  const running = inventory.containers
    .filter((c) => c.state === 'running')
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const selectable = running.filter(
    (c) => NAME_PATTERN.test(c.name) && c.name.length <= CONTAINER_NAME_MAX,
  );
  const unselectable = running.filter((c) => !selectable.includes(c));
  const keys = groupKeys(selectable.map((c) => c.name));

  const lines = [...HEADER];
  const notes = [
    ...unselectable.map(
      (c) =>
        `# Container ${commentText(c.name)} has a name a policy cannot select; its ports stay as Docker publishes them.`,
    ),
  ];
  const stopped = inventory.containers.filter((c) => c.state !== 'running');
  if (stopped.length > 0) {
    notes.push(
      `# Not running now, so not listed: ${stopped.map((c) => commentText(c.name)).join(', ')}.`,
    );
  }
  if (selectable.length === 0) {
    lines.push(...notes, '# No container is running: add groups as you start containers.');
    lines.push('containers: {}');
  } else {
    lines.push(...notes, 'containers:');
    for (const container of selectable) {
      lines.push(...groupLines(exposureOf(container), keys.get(container.name) ?? container.name));
    }
  }
  return `${lines.join('\n')}\n`;
}

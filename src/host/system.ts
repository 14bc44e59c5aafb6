/**
 * The host facts moat reads from /proc, in the network namespace moat runs in: its network
 * interfaces (/proc/net/dev) and its listening sockets with the programs that hold them
 * (/proc/net/{tcp,tcp6,udp,udp6}, then /proc/PID/fd to find each socket's owners). No programs
 * are run. The parsers are exported for the tests; reading is best-effort: a file that cannot be
 * read leaves that fact unknown rather than failing the plan.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import type { Listener } from '../compile/host-facts.js';
import type { Protocol } from '../policy/model.js';

export interface HostSystem {
  readonly interfaces?: readonly string[];
  readonly listeners?: readonly Listener[];
}

/** Interface names from /proc/net/dev. */
export function parseNetDev(text: string): string[] {
  return text
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0]?.trim() ?? '')
    .filter((name) => name !== '')
    .sort();
}

/** `0100007F` (little-endian words, as the kernel prints them) → `127.0.0.1` or an IPv6 text. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2)
    groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  const full = groups.join(':');
  if (full === '0:0:0:0:0:0:0:0') return '::';
  if (full === '0:0:0:0:0:0:0:1') return '::1';
  if (full.startsWith('0:0:0:0:0:ffff:')) return `::ffff:${bytes.slice(12).join('.')}`;
  return full.replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** A socket table line: `sl local rem st … inode`. */
interface SocketLine {
  readonly protocol: Protocol;
  readonly address: string;
  readonly port: number;
  readonly inode: string;
}

/**
 * Listening sockets of one /proc/net table: TCP in LISTEN (0A), UDP bound and unconnected
 * (state 07 with no remote port). Deduplicated by inode.
 */
export function parseSocketTable(text: string, protocol: Protocol): SocketLine[] {
  const out: SocketLine[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const [local, remote, state, inode] = [f[1], f[2], f[3], f[9]];
    if (local === undefined || remote === undefined || inode === undefined) continue;
    const listening =
      protocol === 'tcp' ? state === '0A' : state === '07' && remote.endsWith(':0000');
    if (!listening || inode === '0') continue;
    const [addr, port] = local.split(':');
    if (addr === undefined || port === undefined) continue;
    out.push({ protocol, address: decodeAddress(addr), port: parseInt(port, 16), inode });
  }
  return out;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Socket inode → the processes holding it, looking only for the inodes asked for. */
async function socketOwners(
  inodes: ReadonlySet<string>,
): Promise<Map<string, { pid: number; command: string }[]>> {
  const owners = new Map<string, { pid: number; command: string }[]>();
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((p) => /^[0-9]+$/.test(p));
  } catch {
    return owners;
  }
  await Promise.all(
    pids.map(async (pid) => {
      let fds: string[];
      try {
        fds = await readdir(`/proc/${pid}/fd`);
      } catch {
        return; // gone, or not ours to read
      }
      const held = new Set<string>();
      for (const fd of fds) {
        try {
          const target = await readlink(`/proc/${pid}/fd/${fd}`);
          const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
          if (inode !== undefined && inodes.has(inode)) held.add(inode);
        } catch {
          // closed meanwhile
        }
      }
      if (held.size === 0) return;
      const command = ((await readOptional(`/proc/${pid}/comm`)) ?? '?').trim();
      for (const inode of held)
        owners.set(inode, [...(owners.get(inode) ?? []), { pid: Number(pid), command }]);
    }),
  );
  return owners;
}

/**
 * The host's listening sockets, without their owners: finding those means reading every
 * process's file descriptors, which is slow on a busy host, so it is done later and only for
 * the sockets that need a name (nameListeners).
 */
export async function readListeners(): Promise<Listener[] | undefined> {
  const tables = await Promise.all(
    (
      [
        ['tcp', 'tcp'],
        ['tcp6', 'tcp'],
        ['udp', 'udp'],
        ['udp6', 'udp'],
      ] as const
    ).map(async ([file, protocol]) => {
      const text = await readOptional(`/proc/net/${file}`);
      return text === undefined ? undefined : parseSocketTable(text, protocol);
    }),
  );
  if (tables.some((t) => t === undefined)) return undefined;
  return tables
    .flatMap((t) => t ?? [])
    .map((s) => ({
      protocol: s.protocol,
      address: s.address,
      port: s.port,
      owners: [],
      inode: s.inode,
    }))
    .sort(
      (a, b) =>
        a.protocol.localeCompare(b.protocol) ||
        a.port - b.port ||
        a.address.localeCompare(b.address),
    );
}

/** Fills in the owners of the listeners `which` selects (all, by default). */
export async function nameListeners(
  listeners: readonly Listener[],
  which: (listener: Listener) => boolean = () => true,
): Promise<Listener[]> {
  const wanted = new Set(
    listeners
      .filter((l) => l.owners.length === 0 && l.inode !== undefined && which(l))
      .map((l) => l.inode ?? ''),
  );
  if (wanted.size === 0) return [...listeners];
  const owners = await socketOwners(wanted);
  return listeners.map((l) => {
    const found = l.inode === undefined ? undefined : owners.get(l.inode);
    return found === undefined ? l : { ...l, owners: found.sort((a, b) => a.pid - b.pid) };
  });
}

export async function readHostSystem(): Promise<HostSystem> {
  const [dev, listeners] = await Promise.all([readOptional('/proc/net/dev'), readListeners()]);
  return {
    ...(dev === undefined ? {} : { interfaces: parseNetDev(dev) }),
    ...(listeners === undefined ? {} : { listeners }),
  };
}

/**
 * The change probe for the legacy (x_tables) backend, which sends no change notifications.
 *
 * Listing a legacy table copies all of it out of the kernel and parses it: 13 ms of CPU for
 * 1,000 rules, 130–170 ms for 50,000 (docs/performance.md), far too much to do every 250 ms.
 * The kernel answers a much smaller question for nothing: `IPT_SO_GET_INFO` (getsockopt on a
 * raw socket) returns the table's entry count, its size in bytes and the offsets of its
 * built-in chains, all of which move when a rule or chain is added, deleted or flushed. Node
 * cannot call getsockopt, so a tiny Perl program does (perl-base is Essential on Debian and
 * Ubuntu), through `syscall`, and prints one line whenever the answer changes. Node wakes only
 * then. The program exits when its stdin closes, i.e. when watch does.
 *
 * Not seen: replacing one rule by another of exactly the same size (`iptables -R` with a rule
 * as long as the old one); the periodic reconcile (`--interval`) catches that.
 *
 * Each line has both families' answers, so the line before says which family changed: watch
 * then reads that family's table only.
 */
import { ANYTHING, type ChangeHint } from '../netfilter/parse-monitor.js';
import { FAMILIES } from '../policy/model.js';

/** `getsockopt`'s system call number, per Node's `process.arch`; others use no probe. */
const GETSOCKOPT: Readonly<Record<string, number>> = {
  x64: 55,
  arm64: 209, // the generic table, shared by riscv64 and loong64
  riscv64: 209,
  loong64: 209,
  arm: 295,
  ia32: 365, // direct socket calls since Linux 4.3
};

export function getsockoptSyscall(arch: string): number | undefined {
  return GETSOCKOPT[arch];
}

// struct ipt_getinfo / ip6t_getinfo: name[32], valid_hooks, hook_entry[5], underflow[5],
// num_entries, size: 84 bytes. IPT_SO_GET_INFO = IP6T_SO_GET_INFO = 64, on SOL_IP (0) and
// SOL_IPV6 (41). Only tables listed in /proc/net/ip*_tables_names are asked about: asking for
// another would create it (and load its module).
const PROGRAM = `
use strict;
my ($interval, $nr) = @ARGV;
$| = 1;
socket(my $v4, 2, 3, 255) or die "moat legacy probe: no raw IPv4 socket: $!\\n";
socket(my $v6, 10, 3, 255) or die "moat legacy probe: no raw IPv6 socket: $!\\n";
my @families = ([$v4, 0, '/proc/net/ip_tables_names', 'ipv4'],
                [$v6, 41, '/proc/net/ip6_tables_names', 'ipv6']);
sub state {
  my @out;
  for my $f (@families) {
    my ($sock, $level, $names, $family) = @$f;
    my $present = 0;
    if (open(my $fh, '<', $names)) {
      while (my $line = <$fh>) { chomp $line; $present = 1 if $line eq 'filter'; }
      close $fh;
    }
    if (!$present) { push @out, "$family:none"; next; }
    my $info = pack('Z32', 'filter') . ("\\0" x 52);
    my $len = pack('L', 84);
    if (syscall($nr, fileno($sock), $level, 64, $info, $len) == 0) {
      push @out, "$family:" . join(',', unpack('x32 L13', $info));
    } else {
      push @out, "$family:error=" . ($! + 0);
    }
  }
  return join(' ', @out);
}
my $last = '';
my $rin = '';
vec($rin, fileno(STDIN), 1) = 1;
while (1) {
  my $now = state();
  if ($now ne $last) { print "$now\\n"; $last = $now; }
  my $ready = select(my $rout = $rin, undef, undef, $interval / 1000);
  if ($ready > 0) { my $buf; exit 0 if sysread(STDIN, $buf, 64) == 0; }
}
`;

/** The command that runs the probe, polling every `intervalMs`; undefined on an unknown arch. */
export function legacyProbeCommand(
  arch: string,
  intervalMs: number,
): { command: string; args: string[] } | undefined {
  const nr = getsockoptSyscall(arch);
  if (nr === undefined) return undefined;
  return { command: 'perl', args: ['-e', PROGRAM, String(intervalMs), String(nr)] };
}

/**
 * What the probe's lines say changed: the family whose answer differs from the line before;
 * anything for the first line, or when both differ. Kept across restarts of the probe.
 */
export function legacyProbeHints(): (line: string) => ChangeHint | undefined {
  let last: ReadonlyMap<string, string> | undefined;
  return (line) => {
    const now = new Map(
      line
        .trim()
        .split(' ')
        .filter((word) => word.includes(':'))
        .map((word) => [word.slice(0, word.indexOf(':')), word.slice(word.indexOf(':') + 1)]),
    );
    const before = last;
    last = now;
    if (before === undefined) return ANYTHING;
    const changed = FAMILIES.filter((family) => now.get(family) !== before.get(family));
    if (changed.length === 0) return undefined;
    const [family] = changed;
    return changed.length === 1 && family !== undefined ? { kind: 'family', family } : ANYTHING;
  };
}

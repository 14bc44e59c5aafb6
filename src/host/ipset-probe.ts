/**
 * The change probe for ipsets, which send no change notifications.
 *
 * An interactive `ipset -` answers `list -t` (every set's header: type, creation options with
 * the random `initval` of a hash set, size, references, entry count; never members) without
 * a process start per question. It must write unbuffered (`stdbuf -o0`) to be read while it
 * runs, which makes one answer a dozen small writes; a small Perl program (perl-base is
 * Essential on Debian and Ubuntu) reads them, asks every `intervalMs`, and prints one line only
 * when the headers of moat's sets (`moat-*`) change: a flush, a destroy, a re-create, most
 * member changes. Node is not woken otherwise. The program exits when its stdin closes.
 *
 * Not seen: replacing members one for one, which keeps the count and (usually) the size; the
 * periodic reconcile (`--interval`) catches that.
 */

const PROGRAM = `
use strict;
use IPC::Open2;
my ($interval) = @ARGV;
$| = 1;
my $pid = open2(my $from, my $to, 'stdbuf', '-o0', 'ipset', '-');
my $buffer = '';
sub answer {
  while (1) {
    my $at = index($buffer, 'ipset> ');
    if ($at >= 0) {
      my $text = substr($buffer, 0, $at);
      $buffer = substr($buffer, $at + 7);
      return $text;
    }
    my $rin = '';
    vec($rin, fileno($from), 1) = 1;
    return undef unless select(my $rout = $rin, undef, undef, 5) > 0;
    return undef unless sysread($from, $buffer, 65536, length $buffer);
  }
}
sub quit { kill 'TERM', $pid; exit $_[0]; }
quit(1) unless defined answer();
my $last;
my $lifeline = '';
vec($lifeline, fileno(STDIN), 1) = 1;
while (1) {
  print $to "list -t\\n";
  my $text = answer();
  quit(1) unless defined $text;
  my $moat = join("\\n\\n", sort grep { /^Name: moat-/ } map { s/^\\s+|\\s+$//gr } split(/\\n\\s*\\n/, $text));
  if (!defined $last || $moat ne $last) { print "moat sets changed\\n"; $last = $moat; }
  if (select(my $rout = $lifeline, undef, undef, $interval / 1000) > 0) {
    my $byte;
    quit(0) unless sysread(STDIN, $byte, 64);
  }
}
`;

/** The command that runs the probe, asking every `intervalMs`. */
export function ipsetProbeProgram(intervalMs: number): { command: string; args: string[] } {
  return { command: 'perl', args: ['-e', PROGRAM, String(intervalMs)] };
}

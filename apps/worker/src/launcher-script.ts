/**
 * The task launcher: a small Perl program (it needs only perl-base, part of every Debian system, and
 * Perl ships with most Unix systems; slim and alpine images lack it, see launcher-spawn.ts) that a
 * worker keeps running beside it and that forks every task process.
 * Forking from it is cheap (a few MiB to copy, not the worker's heap) and never blocks the worker's
 * event loop, and it notices the worker's death, however it dies, by the end of its stdin.
 *
 * Requests on stdin, one frame each: `<byte length>\n<fields>`, the fields separated by NUL (no field
 * can hold one: the protocol forbids NUL in every string a task gives):
 *   token, output dir, cwd, file, argc, args…, envc, NAME=value…
 * Messages on stdout, one line each:
 *   `S <token> <pid>`                              forked; the child leads its own process group
 *   `E <token> <stage> <errno name> <text>`         mkdir/open/chdir/exec failed in the child, or fork
 *   `X <token> <pid> <exit code|-1> <signal number> <stdout tail hex> <stderr tail hex>`   reaped
 * A child's `E` comes before its `X`; an `X` can come before its `S`. A failed fork sends only `E`.
 *
 * On the end of stdin it sends SIGTERM to the process group of every task still running, waits up to
 * the kill grace (its first argument, in ms) for them to exit, sends SIGKILL to the groups left and
 * exits.
 */
export const LAUNCHER_SCRIPT = String.raw`
use strict;
use warnings;
use POSIX ();

# The worker's descriptors that lack close-on-exec (its ZooKeeper sockets, for one) stay with the worker:
# held open here or in a task, they would outlive the connections they belong to.
for my $dir ('/proc/self/fd', '/dev/fd') {
  opendir(my $dh, $dir) or next;
  my @fds = grep { /^\d+$/ && $_ > 2 } readdir($dh);
  closedir($dh);
  POSIX::close($_) for @fds;
  last;
}

my $grace = ($ARGV[0] // 5000) / 1000;
my $tail_bytes = $ARGV[1] // 4096;
$0 = "zkgrid-launcher" . (defined $ARGV[2] ? " $ARGV[2]" : "");
# Terminal and service-manager signals are for the worker, which drains; this program leaves with it.
$SIG{$_} = 'IGNORE' for qw(INT TERM HUP QUIT PIPE);
binmode STDIN;
open(my $report, '>&', \*STDOUT) or die "dup stdout: $!";
binmode $report;

# SIGCHLD only wakes the loop below (self-pipe): all output happens in one place, so no message
# is ever cut by another.
pipe(my $wake_r, my $wake_w) or die "pipe: $!";
for my $fh ($wake_r, $wake_w) {
  my $flags = fcntl($fh, POSIX::F_GETFL(), 0);
  fcntl($fh, POSIX::F_SETFL(), $flags | POSIX::O_NONBLOCK());
}
$SIG{CHLD} = sub { syswrite($wake_w, "x") };

my %live;    # pid => [token, output dir]

sub send_line {
  my ($line) = @_;
  my $off = 0;
  while ($off < length $line) {
    my $n = syswrite($report, $line, length($line) - $off, $off);
    if (!defined $n) { next if $!{EINTR}; return; }    # the worker is gone: nothing to tell
    $off += $n;
  }
}

sub errno_name {
  my $code = 0 + $!;
  for my $name (keys %!) { return $name if $!{$name}; }
  return "E$code";
}

sub tail_hex {
  my ($file) = @_;
  open(my $fh, '<:raw', $file) or return '-';
  my $size = -s $fh // 0;
  my $len = $size < $tail_bytes ? $size : $tail_bytes;
  my $buf = '';
  if ($len > 0) { sysseek($fh, $size - $len, 0); sysread($fh, $buf, $len); }
  close $fh;
  return length($buf) ? unpack('H*', $buf) : '-';
}

sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $status = $?;
    my $task = delete $live{$pid} or next;
    my ($token, $dir) = @$task;
    my $signal = $status & 127;
    my $code = $signal ? -1 : $status >> 8;
    send_line("X $token $pid $code $signal " . tail_hex("$dir/stdout.txt") . " " . tail_hex("$dir/stderr.txt") . "\n");
  }
}

sub launch {
  my @f = split /\0/, $_[0], -1;
  my ($token, $dir, $cwd, $file, $argc) = splice(@f, 0, 5);
  my @args = splice(@f, 0, $argc);
  my $envc = shift @f;
  my @env = splice(@f, 0, $envc);
  # The child closes its end once it leads its own process group: only then is S sent, so a kill
  # the worker sends the group at once reaches it (sent earlier, it would find no such group).
  my ($ready_r, $ready_w);
  my $pid = pipe($ready_r, $ready_w) ? fork() : undef;
  if (!defined $pid) {
    my $text = "$!";
    my $name = errno_name();
    close($_) for grep { defined } $ready_r, $ready_w;
    send_line("E $token fork $name $text\n");
    return;
  }
  if ($pid == 0) {
    $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP QUIT PIPE CHLD);
    my $fail = sub {
      my ($stage) = @_;
      my $text = "$!";
      syswrite($report, "E $token $stage " . errno_name() . " $text\n");
      POSIX::_exit(127);
    };
    # Its own session and process group: a kill of the group reaches everything the task started.
    POSIX::setsid();
    close($ready_r);
    close($ready_w);
    mkdir($dir) or $!{EEXIST} or $fail->('mkdir');
    open(STDIN, '<', '/dev/null') or $fail->('open');
    open(STDOUT, '>', "$dir/stdout.txt") or $fail->('open');
    open(STDERR, '>', "$dir/stderr.txt") or $fail->('open');
    chdir($cwd) or $fail->('chdir');
    for my $pair (@env) {
      my ($name, $value) = split /=/, $pair, 2;
      $ENV{$name} = $value;
    }
    { no warnings 'exec'; exec { $file } $file, @args; }
    $fail->('exec');
  }
  close($ready_w);
  # EOF: the child has called setsid (or died). A SIGCHLD meanwhile only interrupts the read.
  1 while !defined(sysread($ready_r, my $byte, 1)) && $!{EINTR};
  close($ready_r);
  $live{$pid} = [$token, $dir];
  send_line("S $token $pid\n");
}

my $buf = '';
for (;;) {
  my $rin = '';
  vec($rin, 0, 1) = 1;
  vec($rin, fileno($wake_r), 1) = 1;
  my $ready = select(my $rout = $rin, undef, undef, undef);
  if ($ready > 0 && vec($rout, fileno($wake_r), 1)) { sysread($wake_r, my $drained, 4096); }
  reap();
  next unless $ready > 0 && vec($rout, 0, 1);
  my $n = sysread(STDIN, $buf, 65536, length $buf);
  if (!defined $n) { next if $!{EINTR} || $!{EAGAIN}; last; }
  last if $n == 0;
  for (;;) {
    my $nl = index($buf, "\n");
    last if $nl < 0;
    my $len = substr($buf, 0, $nl);
    last if length($buf) < $nl + 1 + $len;
    my $frame = substr($buf, $nl + 1, $len);
    substr($buf, 0, $nl + 1 + $len) = '';
    launch($frame);
  }
}

# The worker is gone (or done): no task may outlive it. A group outlives its leader while anything
# it started runs, so each group gets SIGKILL after the grace unless it is empty by then.
reap();
my @groups = keys %live;
kill('TERM', -$_) for @groups;
$SIG{CHLD} = 'DEFAULT';    # so that no exit cuts a sleep short
my $rounds = int($grace / 0.02);
while (@groups && $rounds-- > 0) {
  select(undef, undef, undef, 0.02);
  1 while waitpid(-1, POSIX::WNOHANG()) > 0;
  @groups = grep { kill(0, -$_) } @groups;
}
kill('KILL', -$_) for @groups;
POSIX::_exit(0);
`;

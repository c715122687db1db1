"""Guest facts captured before and after a transition, in one ssh round trip each.

Each probe contributes a shell fragment that prints ``name.key=value`` lines; the fragments
are joined so that capturing all facts costs one command. Probes act in the guest (start a
sentinel, write a file) but judge nothing: checks read what they recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.guest.ssh import CommandResult

STATE_DIR = "/run/s3s4-harness"  # tmpfs: gone after a reboot, kept across S3 and S4
PROBE_FILE = "/var/tmp/s3s4-harness-probe.bin"  # on the root virtio disk


def _fill(script: str) -> str:
    return (
        script.replace("@ROUND@", f"{STATE_DIR}/round")
        .replace("@STATE@", STATE_DIR)
        .replace("@FILE@", PROBE_FILE)
    )


@dataclass(frozen=True)
class Probe:
    name: str
    before: str
    after: str


def bash_wait(fifo: str, until: str, seconds: int, pause: float, arg: str = "") -> str:
    """One bash program that waits until the shell test ``until`` holds, at most ``seconds``
    (bash's $SECONDS: between one less and that many), pausing with ``read -t`` on ``fifo``,
    an existing FIFO nobody writes to: no ``sleep`` program every pause, each of which costs a
    TCG guest 20-100 ms. ``until`` goes inside single quotes; ``arg`` is its ``$0``."""
    return (
        f"bash -c 'exec 9<>{fifo}\n"
        f"  until {until} || [ $SECONDS -ge {seconds} ]; do read -r -t {pause} -u 9; done'"
        + (f" {arg}" if arg else "")
    )


# The block probe's in-flight write (see BLOCK): the pattern it writes, in paced steps.
INFLIGHT_STEP_MIB = 1
INFLIGHT_STEPS = 16
INFLIGHT_MIB = INFLIGHT_STEP_MIB * INFLIGHT_STEPS
INFLIGHT_PACE_S = 0.4  # 6.4 s in all: under TCG a request can take 6 s to freeze the guest

# Random data the checks move around, made once per guest (the ready checkpoint already holds
# it) and kept in tmpfs with its checksum and each MiB's: urandom and sha256 of tens of MiB
# cost seconds under TCG, so writes after a wake take a MiB of it (a different one each time,
# see SLICE_SUM) instead of fresh random data, and its checksum is looked up, not computed again.
PATTERN_READY = _fill(f"""
[ -d @STATE@ ] || mkdir -p @STATE@
if [ ! -s @STATE@/slices.sha ]; then
  head -c {INFLIGHT_MIB * 1048576} /dev/urandom > @STATE@/pattern
  sha256sum < @STATE@/pattern | cut -d' ' -f1 > @STATE@/pattern.sha
  split -b 1048576 -d -a 2 @STATE@/pattern @STATE@/slice.
  sha256sum @STATE@/slice.?? | cut -d' ' -f1 > @STATE@/slices.sha.new
  rm -f @STATE@/slice.??; mv @STATE@/slices.sha.new @STATE@/slices.sha
fi
""")
# ``slice_sum N``: the checksum of the pattern's MiB number N (modulo the MiBs); ``round``:
# how many fact captures the identity probe counted (it moves the count first, alone), from
# which each write picks its MiB: one that never reached the disk reads back as an earlier
# capture's MiB, never as the one expected.
SLICE_SUM = _fill(f"""
slices={INFLIGHT_MIB}
slice_sum() {{ n=$(($1 % slices)); i=0; while read -r s; do
  [ $i = $n ] && {{ echo "$s"; return; }}; i=$((i + 1)); done < @STATE@/slices.sha; }}
round=0; read -r round 2>/dev/null < @ROUND@
""")
# Facts are read with shell builtins where one will do: under TCG every program started in the
# guest costs 20-100 ms (20 ms on an idle guest here), and the script runs twice per cycle.
_IDENTITY_SCRIPT = PATTERN_READY + _fill(r"""
r=0; read -r r 2>/dev/null < @ROUND@; echo $((r + 1)) > @ROUND@
fact() { v=; read -r v 2>/dev/null < "$2"; echo "$1=$v"; }
fact guest.boot_id /proc/sys/kernel/random/boot_id
read -r up _ < /proc/uptime; echo "guest.uptime=$up"
fact guest.kernel /proc/sys/kernel/osrelease
fact guest.cmdline /proc/cmdline
fact guest.bios_version /sys/class/dmi/id/bios_version
fact guest.power_state /sys/power/state
fact guest.mem_sleep /sys/power/mem_sleep
fact guest.power_disk /sys/power/disk
swaps=; { read -r _; while read -r name _; do swaps="$swaps$name "; done; } < /proc/swaps
echo "guest.swaps=$swaps"
fact guest.suspend_success /sys/power/suspend_stats/success
fact guest.taint /proc/sys/kernel/tainted
read -r r _ _ _ w _ < /sys/block/vda/stat; echo "blk.vda_requests=$((r + w))"
[ -s @STATE@/marker ] || head -c8 /dev/urandom | od -An -tx1 | tr -d ' \n' > @STATE@/marker
fact guest.ram_marker @STATE@/marker
""")
IDENTITY = Probe(name="guest", before=_IDENTITY_SCRIPT, after=_IDENTITY_SCRIPT)

# The sleep states ACPI offered at boot (the preflight's), read from the kernel log once per
# boot and kept in tmpfs (the ready checkpoint holds them already): two programs.
ACPI_STATES_READY = _fill(r"""
[ -d @STATE@ ] || mkdir -p @STATE@
[ -s @STATE@/acpi_states ] || dmesg | awk '/ACPI: PM: \(supports / && a == "" {a = $0
  sub(/.*ACPI: PM: \(supports /, "", a); sub(/\)$/, "", a)} END {print a}' > @STATE@/acpi_states
""")
# Before the sleep only: a line of the harness's own written to the kernel log, after which the
# closing look keeps what the kernel logged (live_probes.split_closing). Shell builtins only;
# counting the log's lines instead (the way back when the kernel takes no lines from userspace,
# printk.devkmsg=off) starts dmesg and awk: 0.13 s of every capture before a sleep under TCG.
# The mark is the capture's number (the identity probe's count): unique within a boot.
KERNEL_LOG_MARK = "s3s4-harness: kernel log mark"
KERNEL_LOG = Probe(
    name="kernel",
    before=ACPI_STATES_READY
    + _fill(f"""
v=; read -r v < @STATE@/acpi_states; echo "guest.acpi_states=$v"
r=0; read -r r 2>/dev/null < @ROUND@; m=; read -r m 2>/dev/null < /proc/sys/kernel/printk_devkmsg
if [ "$m" != off ] && {{ echo "<6>{KERNEL_LOG_MARK} $r" > /dev/kmsg; }} 2>/dev/null; then
  echo "guest.log_mark={KERNEL_LOG_MARK} $r"
else echo "guest.dmesg_lines=$(dmesg | wc -l)"; fi
"""),
    after="",
)

# The sentinel uses shell builtins only (bash's ``read -t`` on a FIFO nobody writes as its
# sleep, the counter overwritten in place): under TCG a loop that starts ``mv`` and ``sleep``
# every tick kept half of a vCPU busy for the whole cycle and slowed everything the guest did.
# It is started once per boot (the ready checkpoint holds one already) and carries on across
# every cycle of that boot: starting one took the facts script before each sleep 0.3-0.4 s of
# the guest's CPU under TCG. One that is gone (killed, or a reboot) is started again.
SENTINEL_START = _fill(
    """
pid=; read -r pid 2>/dev/null < @STATE@/sentinel.pid
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
  mkdir -p @STATE@; rm -f @STATE@/sentinel.pid @STATE@/count @STATE@/tick
  mkfifo @STATE@/tick
  setsid bash -c 'exec 3<>@STATE@/tick; echo $$ > @STATE@/pid.new
    mv @STATE@/pid.new @STATE@/sentinel.pid; i=0
    while :; do i=$((i+1)); printf "%s\\n" $i 1<> @STATE@/count; read -r -t 0.1 -u 3; done' \\
    </dev/null >/dev/null 2>&1 &
  """
    + bash_wait("@STATE@/tick", "[ -s @STATE@/count ] && [ -s @STATE@/sentinel.pid ]", 10, 0.02)
    + """
fi
"""
)
SENTINEL = Probe(
    name="sentinel",
    before=SENTINEL_START
    + _fill("""
v=; read -r v < @STATE@/sentinel.pid; echo "sentinel.pid=$v"
v=; read -r v < @STATE@/count; echo "sentinel.count=$v"
"""),
    after=_fill(
        """
pid=; read -r pid 2>/dev/null < @STATE@/sentinel.pid
echo "sentinel.pid=$pid"
alive=no; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=yes
echo "sentinel.alive=$alive"
c1=; read -r c1 2>/dev/null < @STATE@/count
echo "sentinel.count=$c1"
# A sentinel that is gone never counts on: no wait for it. One program, bounded by its clock.
[ $alive = yes ] && """
        + bash_wait(
            "@STATE@/tick", '! { read -r c < @STATE@/count && [ "$c" = "$0" ]; }', 10, 0.05, '"$c1"'
        )
        + """
v=; read -r v 2>/dev/null < @STATE@/count; echo "sentinel.count_later=$v"
"""
    ),
)

# Read back with O_DIRECT rather than after dropping every cache: the other probes running
# beside this one would then read their programs from disk again. The file written before the
# sleep is one MiB of the pattern; after the wake the next MiB of the pattern is written after
# it, and both are read back in one ``dd | cmp`` (three programs after the wake, not five: each
# costs the TCG guest 30 ms and more while it still resumes). Only when that differs are the
# two compared apart, to name which. Which MiB was written is noted in tmpfs: while it lasts
# (not across a reboot, after which the pattern is made again) the file is compared with the
# pattern byte for byte, else its first MiB hashed (cmp costs the TCG guest 28 ms a MiB,
# sha256sum 75 ms). The write before truncates the file, so a fresh write that never reached
# the disk reads back short, never as the MiB expected.
DISK = Probe(
    name="disk",
    before=SLICE_SUM
    + _fill("""
: > @STATE@/disk.slice
dd if=@STATE@/pattern of=@FILE@ bs=1M skip=$((round % slices)) count=1 conv=fsync 2>/dev/null \\
  && echo "disk.written_sha=$(slice_sum $round)" && echo $((round % slices)) > @STATE@/disk.slice
"""),
    after=SLICE_SUM
    + _fill("""
sha=; written=; read -r written 2>/dev/null < @STATE@/disk.slice
[ -f @FILE@ ] || written=
# The MiB after the one written before, unless that was the pattern's last.
fresh=$((round + 5)); next=
[ -n "$written" ] && [ "$written" -lt $((slices - 1)) ] && fresh=$((written + 1)) && next=yes
want=$(slice_sum $fresh); echo "disk.fresh_sha=$want"
[ -f @FILE@ ] && [ -z "$written" ] && {
  sha=$(dd if=@FILE@ bs=1M count=1 iflag=direct 2>/dev/null | sha256sum); sha=${sha%% *}; }
dd if=@STATE@/pattern of=@FILE@ bs=1M skip=$((fresh % slices)) seek=1 count=1 oflag=direct \\
  conv=notrunc,fsync 2>/dev/null
echo "disk.fresh_write_status=$?"
v="differs from the pattern"
if [ -n "$next" ] && dd if=@FILE@ bs=2M count=1 iflag=direct 2>/dev/null \\
  | cmp -s -n 2097152 - @STATE@/pattern 0 $((written * 1048576))
then sha=$(slice_sum $written); v=$want
else
  [ -n "$written" ] && { sha="differs from the pattern"; dd if=@FILE@ bs=1M count=1 iflag=direct \\
    2>/dev/null | cmp -s -n 1048576 - @STATE@/pattern 0 $((written * 1048576)) \\
    && sha=$(slice_sum $written); }
  dd if=@FILE@ bs=1M skip=1 count=1 iflag=direct 2>/dev/null \\
    | cmp -s -n 1048576 - @STATE@/pattern 0 $((fresh % slices * 1048576)) && v=$want
fi
echo "disk.reread_sha=$sha"
echo "disk.fresh_reread_sha=$v"
"""),
)

# For the loops that pace writes across a sleep (bash, inside single quotes): ``jumped`` is set
# once the guest's boot clock, which counts the time asleep also in hibernation, moved by over
# a second (100 ticks of /proc/uptime) since the loop's last look; ``last`` holds that look.
CLOCK_JUMP = (
    "read -r up _ < /proc/uptime; up=$((10#${up%.*}${up#*.})); "
    '[ -n "$last" ] && [ $((up - last)) -gt 100 ] && jumped=yes; last=$up'
)

# 2 MiB in 256 KiB chunks, paced by the guest's own clock so that it spans the sleep request.
# A chunk still outgrows virtio-net's ring several times over; 8 MiB in 1 MiB chunks cost the
# guest's sshd (its cipher and MAC in software under TCG) the largest share of its CPU while
# it went to sleep and while the checks ran after the wake.
STREAM_CHUNK = 262144
STREAM_CHUNKS = 8
STREAM_BYTES = STREAM_CHUNK * STREAM_CHUNKS
STREAM_READY = _fill(f"""
mkdir -p @STATE@
if [ ! -s @STATE@/stream.sha ]; then
  head -c {STREAM_BYTES} /dev/urandom > @STATE@/stream.bin
  sha256sum < @STATE@/stream.bin | cut -d' ' -f1 > @STATE@/stream.sha
fi
""")
# Paced while the guest is awake before the sleep, so that the stream is in flight when it
# freezes; once the guest is seen to have slept the rest goes unpaced: its suspend counter
# moved, or its boot clock jumped by over a second between two chunks (as the block probe's
# writer tells it: hybrid sleep writes its image with tasks frozen and counts no suspend,
# and paced to the end its stream's tail took 1.2 s of every hybrid cycle's checks).
# The pause is bash's ``read -t`` on a FIFO nobody writes to, not a ``sleep`` program: the
# pacing runs while the guest goes to sleep, and every program started then slows that.
STREAM_COMMAND = STREAM_READY + _fill(f"""
[ -p @STATE@/stream.tick ] || mkfifo @STATE@/stream.tick
cat @STATE@/stream.sha
exec bash -c 'exec 3<>@STATE@/stream.tick; i=0; read -r slept < /sys/power/suspend_stats/success
last=; jumped=; paced=yes
while [ $i -lt {STREAM_CHUNKS} ]; do
  dd if=@STATE@/stream.bin bs={STREAM_CHUNK} skip=$i count=1 2>/dev/null; i=$((i + 1))
  read -r now < /sys/power/suspend_stats/success; [ "$now" = "$slept" ] || paced=
  {CLOCK_JUMP}; [ -n "$jumped" ] && paced=
  [ -n "$paced" ] && read -r -t 0.15 -u 3
done; exit 0'
""")
WARM_UP = PATTERN_READY + STREAM_READY + SENTINEL_START + ACPI_STATES_READY

# The NIC's interrupts are counted on the host (live_probes.nic_irqs), from /proc/interrupts read
# through the agent: awk took the guest 20-40 ms.
NET_SCRIPT = """
# The first NIC bound to virtio_net (not the default route: it goes away with the link). Links
# are resolved with ``cd -P`` (a builtin), not readlink: under TCG each program started costs
# the guest 20-100 ms.
if=; drv=; dev=
for d in /sys/class/net/*; do
  cd -P "$d/device/driver" 2>/dev/null || continue
  drv=${PWD##*/}
  case "$drv" in virtio_net) if=${d##*/}; cd -P "$d/device" && dev=${PWD##*/}; break;; esac
done
cd /
echo "net.iface=$if"
echo "net.driver=$drv"
v=; read -r v 2>/dev/null < "/sys/class/net/$if/operstate"; echo "net.operstate=$v"
v=; read -r v 2>/dev/null < "/sys/class/net/$if/carrier"; echo "net.carrier=$v"
echo "net.device=$dev"
"""

# The scratch disk /dev/vdc: the pattern is written in direct 1 MiB steps paced by the guest's
# own clock, so that the write is still going on when the guest freezes (written in one go it
# took 0.2 s, over long before the request), until one of: the guest is seen to have slept
# (its suspend counter moved, or its boot clock, which counts time asleep also in hibernation,
# jumped by over a second between two steps), the probe after the transition says it is over
# (a word on the writer's FIFO: a host save is invisible to the guest), or the steps run out.
# After a sleep one step more goes at once, with fsync: the woken guest's first I/O. What was
# written must read back intact; the rest of the pattern is not written (writing all of it
# after the wake, then reading it back, took 0.6 s of the guest's CPU under TCG for nothing
# the fresh write below does not show). Each capture writes at another offset (INFLIGHT_BASES
# of them, by the identity probe's count), so that a write that was lost reads back as an
# earlier cycle's data at that offset, never as the pattern expected there.
# ``blk.inflight_steps`` is "<steps written before> <why the pacing ended>": slept, after or
# paced; ``blk.inflight_mib`` all the MiBs written. Each step starts a dd (20-100 ms of guest
# CPU under TCG, taken from the guest's own way to sleep), hence a slow pace.
INFLIGHT_BASES = 9  # offsets 0..8 MiB; with two captures a cycle, one comes back every 9 cycles
BLOCK = Probe(
    name="blk",
    before=SLICE_SUM
    + _fill(f"""
v=; read -r v < @STATE@/pattern.sha; echo "blk.pattern_sha=$v"
# Emptied, not removed, and the FIFO kept (what is written to one nobody holds open is
# dropped): two programs fewer while the guest goes to sleep.
: > @STATE@/inflight.status; : > @STATE@/inflight.steps; : > @STATE@/inflight.mib
: > @STATE@/blk.pid; [ -p @STATE@/blk.tick ] || mkfifo @STATE@/blk.tick
base=$((round % {INFLIGHT_BASES})); echo $base > @STATE@/inflight.base
read -r r _ _ _ w _ < /sys/block/vdc/stat; echo "blk.vdc_requests=$((r + w))"
setsid bash -c 'echo $$ > @STATE@/blk.pid; exec 3<>@STATE@/blk.tick; base=$0
  read -r slept < /sys/power/suspend_stats/success
  i=0; rc=0; last=; jumped=; over=; why=paced
  step() {{ dd if=@STATE@/pattern of=/dev/vdc bs={INFLIGHT_STEP_MIB}M skip=$i \\
    seek=$((base + i)) count=1 oflag=direct "$@" 2>/dev/null; }}
  while [ $i -lt {INFLIGHT_STEPS} ]; do
    read -r now < /sys/power/suspend_stats/success; [ "$now" = "$slept" ] || {{ why=slept; break; }}
    {CLOCK_JUMP}; [ -n "$jumped" ] && {{ why=slept; break; }}
    [ -n "$over" ] && {{ why=after; break; }}
    step || {{ rc=$?; why=failed; break; }}
    i=$((i + 1)); read -r -t {INFLIGHT_PACE_S} -u 3 over
  done
  echo "$i $why" > @STATE@/inflight.steps
  if [ $why = slept ]; then step conv=fsync && i=$((i + 1)) || rc=$?; fi
  echo $i > @STATE@/inflight.mib
  echo $rc > @STATE@/inflight.status' $base </dev/null >/dev/null 2>&1 &
"""),
    after=SLICE_SUM
    + _fill(
        """
# Opened read-write: never blocks, also when the writer has gone.
[ -p @STATE@/blk.tick ] && { echo over >&4; } 4<>@STATE@/blk.tick
# Waits for the writer only while it lives (after a reboot it is gone, and so is its pid
# file), for at most 60 s, pausing with bash's ``read -t`` on a FIFO of its own that nobody
# writes to: one program in all while the writer finishes, not a ``sleep`` every tenth.
p=; read -r p 2>/dev/null < @STATE@/blk.pid
[ -s @STATE@/inflight.status ] || [ -z "$p" ] || {
  [ -p @STATE@/blk.wait ] || mkfifo @STATE@/blk.wait
  """
        + bash_wait(
            "@STATE@/blk.wait",
            '[ -s @STATE@/inflight.status ] || ! kill -0 "$0" 2>/dev/null',
            60,
            0.05,
            '"$p"',
        )
        + """
}
v=; read -r v 2>/dev/null < @STATE@/inflight.status; echo "blk.inflight_status=${v:-unfinished}"
v=; read -r v 2>/dev/null < @STATE@/inflight.steps; echo "blk.inflight_steps=$v"
n=; read -r n 2>/dev/null < @STATE@/inflight.mib; n=${n:-0}; echo "blk.inflight_mib=$n"
base=0; read -r base 2>/dev/null < @STATE@/inflight.base
# Compared byte for byte (cmp costs half of a second sha256 under TCG): data equal to the
# pattern where it was written has the pattern's checksum; anything else is named as such.
if [ "$n" -gt 0 ] && dd if=/dev/vdc bs=1M skip=$base count=$n iflag=direct 2>/dev/null \\
  | cmp -s -n $((n * 1048576)) - @STATE@/pattern
then
  read -r v < @STATE@/pattern.sha; echo "blk.inflight_sha=$v"
else echo "blk.inflight_sha=differs from the pattern"; fi
# A write after the wake, read back: the writer's step at the wake (with fsync) was one, read
# back above; only when there was none (a sleep the guest did not see, or the writer gone)
# a fresh MiB is written at 40 MiB. Both were 110 ms of the TCG guest's CPU on every sleep.
s=; why=; read -r s why 2>/dev/null < @STATE@/inflight.steps
if [ "$why" != slept ] || [ "$n" != $((s + 1)) ]; then
  fresh=$((round + 10)); want=$(slice_sum $fresh); echo "blk.fresh_sha=$want"
  dd if=@STATE@/pattern of=/dev/vdc bs=1M skip=$((fresh % slices)) seek=40 count=1 oflag=direct \\
    conv=fsync 2>/dev/null
  echo "blk.fresh_status=$?"
  v="differs from the pattern"; dd if=/dev/vdc bs=1M skip=40 count=1 iflag=direct 2>/dev/null \\
    | cmp -s -n 1048576 - @STATE@/pattern 0 $((fresh % slices * 1048576)) && v=$want
  echo "blk.fresh_reread_sha=$v"
fi
read -r r _ _ _ w _ < /sys/block/vdc/stat; echo "blk.vdc_requests=$((r + w))"
"""
    ),
)

# Before the sleep the network is read over ssh with the other facts (one round trip); after
# the wake it is read through the agent, beside the facts script (see cycle._capture_after).
NET = Probe(name="net", before=NET_SCRIPT, after="")

DEFAULT_PROBES = (IDENTITY, KERNEL_LOG, NET, SENTINEL, DISK, BLOCK)
# Across a clean shutdown and a fresh boot only the disk keeps anything: the sentinel and the
# in-flight block write are gone by design, and waiting for them would only cost time.
AFTER_REBOOT_PROBES = (IDENTITY, KERNEL_LOG, DISK)


# Each probe's time, from the guest's own clock (a shell builtin read of /proc/uptime, 10 ms
# resolution): ``time.<probe>.start`` and ``time.<probe>.end``. Read by probe_seconds, never
# judged.
_MARK = 'read -r _t _ < /proc/uptime; echo "time.{name}.{edge}=$_t"'


def _with_marks(probe: Probe, part: str) -> str:
    return "\n".join(
        (
            _MARK.format(name=probe.name, edge="start"),
            part,
            _MARK.format(name=probe.name, edge="end"),
        )
    )


def script(probes: tuple[Probe, ...], phase: str) -> str:
    """One script for ``phase``: the first probe alone (it reads counters the others move),
    then the others side by side, each into a file of its own printed in order: under TCG the
    guest's second vCPU hashes one probe's data while the first waits on another's I/O."""
    parts = [(probe, getattr(probe, phase).strip()) for probe in probes]
    parts = [(probe, part) for probe, part in parts if part]
    if not parts:
        return "\n"
    (first, first_part), *others = parts
    lines = [_with_marks(first, first_part)]
    if others:
        # One file per probe (one facts script at a time runs in a guest), printed and emptied
        # with builtins, never a stale one printed again: ``cat`` and ``rm`` took the guest
        # 45 ms a capture under TCG.
        out = f"{STATE_DIR}/facts"
        lines.append(f"[ -d {STATE_DIR} ] || mkdir -p {STATE_DIR}")
        for probe, part in others:
            lines.append(f"(\n{_with_marks(probe, part)}\n) > {out}.{probe.name} 2>&1 &")
        lines.append("wait")
        names = " ".join(f"{out}.{probe.name}" for probe, _ in others)
        lines.append(
            f"for f in {names}; do\n"
            '  while IFS= read -r l || [ -n "$l" ]; do printf \'%s\\n\' "$l"; done < "$f"\n'
            '  : > "$f"\n'
            "done"
        )
    return "\n".join(lines) + "\n"


def probe_seconds(facts: dict[str, str]) -> dict[str, float]:
    """How long each probe took, popped out of ``facts`` (the ``time.*`` marks)."""
    edges: dict[str, dict[str, float]] = {}
    for key in [k for k in facts if k.startswith("time.")]:
        value = facts.pop(key)
        name, _, edge = key.removeprefix("time.").rpartition(".")
        try:
            edges.setdefault(name, {})[edge] = float(value)
        except ValueError:
            continue
    return {
        name: round(seen["end"] - seen["start"], 3)
        for name, seen in edges.items()
        if "start" in seen and "end" in seen
    }


def parse_facts(result: CommandResult) -> dict[str, str]:
    """``name.key=value`` lines into a dict; other lines are ignored."""
    facts: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and "." in key and " " not in key:
            facts[key] = value.strip()
    return facts

"""Guest facts captured before and after a transition, in one ssh round trip each.

Each probe contributes a shell fragment that prints ``name.key=value`` lines; the fragments
are joined so that capturing all facts costs one command. Probes act in the guest (start a
sentinel, write a file) but judge nothing: checks read what they recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.ssh import CommandResult

STATE_DIR = "/run/s3s4-harness"  # tmpfs: gone after a reboot, kept across S3 and S4
PROBE_FILE = "/var/tmp/s3s4-harness-probe.bin"  # on the root virtio disk


def _fill(script: str) -> str:
    return script.replace("@STATE@", STATE_DIR).replace("@FILE@", PROBE_FILE)


@dataclass(frozen=True)
class Probe:
    name: str
    before: str
    after: str


_IDENTITY_SCRIPT = _fill("""
echo "guest.boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "guest.uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "guest.kernel=$(uname -r)"
echo "guest.bios_version=$(cat /sys/class/dmi/id/bios_version 2>/dev/null)"
echo "guest.power_state=$(cat /sys/power/state)"
echo "guest.mem_sleep=$(cat /sys/power/mem_sleep 2>/dev/null)"
echo "guest.power_disk=$(cat /sys/power/disk 2>/dev/null)"
echo "guest.swaps=$(swapon --show=NAME --noheadings | tr '\\n' ' ')"
echo "guest.suspend_success=$(cat /sys/power/suspend_stats/success 2>/dev/null)"
echo "guest.taint=$(cat /proc/sys/kernel/tainted)"
echo "guest.dmesg_lines=$(dmesg | wc -l)"
echo "blk.vda_requests=$(awk '{print $1 + $5}' /sys/block/vda/stat)"
echo "guest.acpi_states=$(dmesg | sed -n 's/.*ACPI: PM: (supports \\(.*\\))$/\\1/p' | head -n1)"
mkdir -p @STATE@
echo "guest.ram_marker=$(cat @STATE@/marker 2>/dev/null || \
  (head -c8 /dev/urandom | od -An -tx1 | tr -d ' \\n' | tee @STATE@/marker))"
""")
IDENTITY = Probe(name="guest", before=_IDENTITY_SCRIPT, after=_IDENTITY_SCRIPT)

SENTINEL = Probe(
    name="sentinel",
    before=_fill("""
if [ -f @STATE@/sentinel.pid ]; then kill "$(cat @STATE@/sentinel.pid)" 2>/dev/null; fi
rm -f @STATE@/sentinel.pid @STATE@/count
setsid sh -c 'echo $$ > @STATE@/pid.new; mv @STATE@/pid.new @STATE@/sentinel.pid
  i=0; while :; do i=$((i+1)); echo $i > @STATE@/count.new; mv @STATE@/count.new @STATE@/count
  sleep 0.1; done' </dev/null >/dev/null 2>&1 &
timeout 10 sh -c 'until [ -s @STATE@/count ] && [ -s @STATE@/sentinel.pid ]; do sleep .05; done'
echo "sentinel.pid=$(cat @STATE@/sentinel.pid)"
echo "sentinel.count=$(cat @STATE@/count)"
"""),
    after=_fill("""
pid=$(cat @STATE@/sentinel.pid 2>/dev/null)
echo "sentinel.pid=$pid"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "sentinel.alive=yes"; \
  else echo "sentinel.alive=no"; fi
c1=$(cat @STATE@/count 2>/dev/null)
echo "sentinel.count=$c1"
timeout 10 sh -c 'while [ "$(cat @STATE@/count 2>/dev/null)" = "$0" ]; do sleep 0.05; done' "$c1"
echo "sentinel.count_later=$(cat @STATE@/count 2>/dev/null)"
"""),
)

DISK = Probe(
    name="disk",
    before=_fill("""
head -c 4194304 /dev/urandom > @FILE@ && sync @FILE@
echo "disk.written_sha=$(sha256sum < @FILE@ | cut -d' ' -f1)"
"""),
    after=_fill("""
sync; echo 3 > /proc/sys/vm/drop_caches
echo "disk.reread_sha=$(sha256sum < @FILE@ 2>/dev/null | cut -d' ' -f1)"
fresh=$(head -c 4194304 /dev/urandom | tee @FILE@.new | sha256sum | cut -d' ' -f1)
sync @FILE@.new; echo "disk.fresh_write_status=$?"
echo 3 > /proc/sys/vm/drop_caches
echo "disk.fresh_sha=$fresh"
echo "disk.fresh_reread_sha=$(sha256sum < @FILE@.new 2>/dev/null | cut -d' ' -f1)"
rm -f @FILE@.new
"""),
)

# Run through the guest agent, not ssh: the network is what this probe judges.
NET_SCRIPT = """
# The first NIC bound to virtio_net (not the default route: it goes away with the link).
if=$(for drv in /sys/class/net/*/device/driver; do
  case "$(readlink "$drv")" in *virtio_net) basename "$(dirname "$(dirname "$drv")")"; break;; esac
done)
echo "net.iface=$if"
echo "net.driver=$(basename "$(readlink /sys/class/net/$if/device/driver)" 2>/dev/null)"
echo "net.operstate=$(cat /sys/class/net/$if/operstate 2>/dev/null)"
echo "net.carrier=$(cat /sys/class/net/$if/carrier 2>/dev/null)"
dev=$(basename "$(readlink /sys/class/net/$if/device)")
echo "net.device=$dev"
echo "net.irqs=$(grep " $dev-" /proc/interrupts | \
  awk -v n="$(nproc)" '{for (i = 2; i <= n + 1; i++) s += $i} END {print s + 0}')"
"""

# The scratch disk /dev/vdc: a direct write started just before the sleep request is still in
# flight when the guest freezes; after resume it must complete and read back intact. Then a
# fresh write, fsync, and direct read back at another offset.
BLOCK = Probe(
    name="blk",
    before=_fill("""
head -c 33554432 /dev/urandom > @STATE@/pattern
echo "blk.pattern_sha=$(sha256sum < @STATE@/pattern | cut -d' ' -f1)"
rm -f @STATE@/inflight.status
echo "blk.vdc_requests=$(awk '{print $1 + $5}' /sys/block/vdc/stat 2>/dev/null)"
setsid sh -c 'dd if=@STATE@/pattern of=/dev/vdc bs=64k oflag=direct conv=fsync 2>/dev/null
  echo $? > @STATE@/inflight.status' </dev/null >/dev/null 2>&1 &
"""),
    after=_fill("""
timeout 60 sh -c 'until [ -s @STATE@/inflight.status ]; do sleep 0.1; done'
echo "blk.inflight_status=$(cat @STATE@/inflight.status 2>/dev/null || echo unfinished)"
echo "blk.inflight_sha=$(dd if=/dev/vdc bs=64k count=512 iflag=direct 2>/dev/null | \
  sha256sum | cut -d' ' -f1)"
head -c 4194304 /dev/urandom > @STATE@/fresh
echo "blk.fresh_sha=$(sha256sum < @STATE@/fresh | cut -d' ' -f1)"
dd if=@STATE@/fresh of=/dev/vdc bs=1M seek=40 oflag=direct conv=fsync 2>/dev/null
echo "blk.fresh_status=$?"
echo "blk.fresh_reread_sha=$(dd if=/dev/vdc bs=1M skip=40 count=4 iflag=direct 2>/dev/null | \
  sha256sum | cut -d' ' -f1)"
echo "blk.vdc_requests=$(awk '{print $1 + $5}' /sys/block/vdc/stat 2>/dev/null)"
rm -f @STATE@/pattern @STATE@/fresh
"""),
)

DEFAULT_PROBES = (IDENTITY, SENTINEL, DISK, BLOCK)
# Across a clean shutdown and a fresh boot only the disk keeps anything: the sentinel and the
# in-flight block write are gone by design, and waiting for them would only cost time.
AFTER_REBOOT_PROBES = (IDENTITY, DISK)


def script(probes: tuple[Probe, ...], phase: str) -> str:
    parts = [getattr(probe, phase) for probe in probes]
    return "\n".join(part.strip() for part in parts if part.strip()) + "\n"


def parse_facts(result: CommandResult) -> dict[str, str]:
    """``name.key=value`` lines into a dict; other lines are ignored."""
    facts: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and "." in key and " " not in key:
            facts[key] = value.strip()
    return facts

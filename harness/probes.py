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


@dataclass(frozen=True)
class Probe:
    name: str
    before: str
    after: str


_IDENTITY_SCRIPT = """
echo "guest.boot_id=$(cat /proc/sys/kernel/random/boot_id)"
echo "guest.uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "guest.kernel=$(uname -r)"
echo "guest.bios_version=$(cat /sys/class/dmi/id/bios_version 2>/dev/null)"
echo "guest.power_state=$(cat /sys/power/state)"
echo "guest.mem_sleep=$(cat /sys/power/mem_sleep 2>/dev/null)"
echo "guest.power_disk=$(cat /sys/power/disk 2>/dev/null)"
echo "guest.swaps=$(swapon --show=NAME --noheadings | tr '\\n' ' ')"
echo "guest.suspend_success=$(cat /sys/power/suspend_stats/success 2>/dev/null)"
echo "guest.acpi_states=$(dmesg | sed -n 's/.*ACPI: PM: (supports \\(.*\\))$/\\1/p' | head -n1)"
mkdir -p %(state)s
echo "guest.ram_marker=$(cat %(state)s/marker 2>/dev/null || \
  (head -c8 /dev/urandom | od -An -tx1 | tr -d ' \\n' | tee %(state)s/marker))"
""" % {"state": STATE_DIR}
IDENTITY = Probe(name="guest", before=_IDENTITY_SCRIPT, after=_IDENTITY_SCRIPT)

SENTINEL = Probe(
    name="sentinel",
    before="""
if [ -f %(state)s/sentinel.pid ]; then kill "$(cat %(state)s/sentinel.pid)" 2>/dev/null; fi
rm -f %(state)s/sentinel.pid %(state)s/count
setsid sh -c 'echo $$ > %(state)s/sentinel.pid.new; mv %(state)s/sentinel.pid.new %(state)s/sentinel.pid
  i=0; while :; do i=$((i+1)); echo $i > %(state)s/count.new; mv %(state)s/count.new %(state)s/count
  sleep 0.1; done' </dev/null >/dev/null 2>&1 &
timeout 10 sh -c 'until [ -s %(state)s/count ] && [ -s %(state)s/sentinel.pid ]; do sleep 0.05; done'
echo "sentinel.pid=$(cat %(state)s/sentinel.pid)"
echo "sentinel.count=$(cat %(state)s/count)"
"""
    % {"state": STATE_DIR},
    after="""
pid=$(cat %(state)s/sentinel.pid 2>/dev/null)
echo "sentinel.pid=$pid"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "sentinel.alive=yes"; \
  else echo "sentinel.alive=no"; fi
c1=$(cat %(state)s/count 2>/dev/null)
echo "sentinel.count=$c1"
timeout 10 sh -c 'while [ "$(cat %(state)s/count 2>/dev/null)" = "$0" ]; do sleep 0.05; done' "$c1"
echo "sentinel.count_later=$(cat %(state)s/count 2>/dev/null)"
"""
    % {"state": STATE_DIR},
)

DISK = Probe(
    name="disk",
    before="""
head -c 4194304 /dev/urandom > %(file)s && sync %(file)s
echo "disk.written_sha=$(sha256sum < %(file)s | cut -d' ' -f1)"
"""
    % {"file": PROBE_FILE},
    after="""
sync; echo 3 > /proc/sys/vm/drop_caches
echo "disk.reread_sha=$(sha256sum < %(file)s 2>/dev/null | cut -d' ' -f1)"
fresh=$(head -c 4194304 /dev/urandom | tee %(file)s.new | sha256sum | cut -d' ' -f1)
sync %(file)s.new; echo "disk.fresh_write_status=$?"
echo 3 > /proc/sys/vm/drop_caches
echo "disk.fresh_sha=$fresh"
echo "disk.fresh_reread_sha=$(sha256sum < %(file)s.new 2>/dev/null | cut -d' ' -f1)"
rm -f %(file)s.new
"""
    % {"file": PROBE_FILE},
)

DEFAULT_PROBES = (IDENTITY, SENTINEL, DISK)


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

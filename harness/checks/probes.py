"""Guest facts captured before and after a transition, in one ssh round trip each.

Each probe contributes a shell fragment (scripts/*.sh, given its settings) that prints
``name.key=value`` lines; the fragments are joined so that capturing all facts costs one
command. Probes act in the guest (start a sentinel, write a file) but judge nothing: checks
read what they recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.checks.facts import TIME_MARK_PREFIX
from harness.checks.guest_scripts import code, program
from harness.guest.ssh import CommandResult

STATE_DIR = "/run/s3s4-harness"  # tmpfs: gone after a reboot, kept across S3 and S4
PROBE_FILE = "/var/tmp/s3s4-harness-probe.bin"  # on the root virtio disk


@dataclass(frozen=True)
class Probe:
    name: str
    before: str
    after: str


# The bounded wait's code (scripts/bounded_wait.sh), a setting of the scripts that wait.
BOUNDED_WAIT = code("bounded_wait.sh")

# The block probe's in-flight write (scripts/inflight_writer.sh): the pattern it writes, in
# paced steps. Under TCG a request can take seconds to freeze the guest: the steps outlast it.
INFLIGHT_STEP_MIB = 1
INFLIGHT_STEPS = 16
INFLIGHT_MIB = INFLIGHT_STEP_MIB * INFLIGHT_STEPS
INFLIGHT_PACE_S = 0.4
# The offsets it writes at, one per capture: with two captures a cycle, one comes back every
# INFLIGHT_BASES cycles.
INFLIGHT_BASES = 9

# The random data the checks move around (scripts/pattern_ready.sh), as large as the in-flight
# write.
PATTERN_READY = program("pattern_ready.sh", STATE_DIR=STATE_DIR, PATTERN_MIB=INFLIGHT_MIB)
_SLICE_SUM = program("slice_sum.sh", STATE_DIR=STATE_DIR, PATTERN_MIB=INFLIGHT_MIB)

_IDENTITY_SCRIPT = PATTERN_READY + program("identity.sh", STATE_DIR=STATE_DIR)
IDENTITY = Probe(name="guest", before=_IDENTITY_SCRIPT, after=_IDENTITY_SCRIPT)

ACPI_STATES_READY = program("acpi_states_ready.sh", STATE_DIR=STATE_DIR)
KERNEL_LOG_MARK = "s3s4-harness: kernel log mark"
KERNEL_LOG = Probe(
    name="kernel",
    before=ACPI_STATES_READY
    + program("kernel_log_mark.sh", STATE_DIR=STATE_DIR, KERNEL_LOG_MARK=KERNEL_LOG_MARK),
    after="",
)

SENTINEL_START = program(
    "sentinel_start.sh",
    STATE_DIR=STATE_DIR,
    SENTINEL_LOOP=program("sentinel_loop.sh", STATE_DIR=STATE_DIR),
    BOUNDED_WAIT=BOUNDED_WAIT,
)
SENTINEL = Probe(
    name="sentinel",
    before=SENTINEL_START + program("sentinel_facts.sh", STATE_DIR=STATE_DIR),
    after=program("sentinel_after.sh", STATE_DIR=STATE_DIR, BOUNDED_WAIT=BOUNDED_WAIT),
)

DISK = Probe(
    name="disk",
    before=_SLICE_SUM + program("disk_before.sh", STATE_DIR=STATE_DIR, PROBE_FILE=PROBE_FILE),
    after=_SLICE_SUM + program("disk_after.sh", STATE_DIR=STATE_DIR, PROBE_FILE=PROBE_FILE),
)

# 2 MiB in 256 KiB chunks (scripts/stream_pacer.sh). A chunk still outgrows virtio-net's ring
# several times over; larger chunks, or more of them, cost the guest's sshd (its cipher and MAC
# in software under TCG) the largest share of its CPU while it went to sleep and while the
# checks ran after the wake.
STREAM_CHUNK = 262144
STREAM_CHUNKS = 8
STREAM_BYTES = STREAM_CHUNK * STREAM_CHUNKS
STREAM_READY = program("stream_ready.sh", STATE_DIR=STATE_DIR, STREAM_BYTES=STREAM_BYTES)
STREAM_COMMAND = STREAM_READY + program(
    "stream.sh",
    STATE_DIR=STATE_DIR,
    STREAM_PACER=program(
        "clock_jump.sh",
        "stream_pacer.sh",
        STATE_DIR=STATE_DIR,
        STREAM_CHUNK=STREAM_CHUNK,
        STREAM_CHUNKS=STREAM_CHUNKS,
    ),
)
# Each driver's suspend and resume callbacks, timed by the kernel's device_pm_callback trace
# events (scripts/devpm_arm.sh, devpm_after.sh): the DEVPM_TOP slowest of a cycle are kept. A
# cycle's callbacks take some 100 KiB of the buffer: DEVPM_BUFFER_KB a CPU holds a few cycles.
DEVPM_TOP = 20
DEVPM_BUFFER_KB = 512
DEVPM_MARK = "s3s4-harness: device pm mark"
DEVPM_READY = program("devpm_arm.sh", DEVPM_MARK=DEVPM_MARK, DEVPM_BUFFER_KB=DEVPM_BUFFER_KB)
DEVICE_PM = Probe(
    name="devpm",
    before=DEVPM_READY,
    after=program("devpm_after.sh", DEVPM_TOP=DEVPM_TOP, DEVPM_MARK=DEVPM_MARK),
)

# The ready checkpoint holds what every cycle would otherwise make first.
WARM_UP = PATTERN_READY + STREAM_READY + SENTINEL_START + ACPI_STATES_READY + DEVPM_READY

NET_SCRIPT = code("net.sh")

BLOCK = Probe(
    name="blk",
    before=_SLICE_SUM
    + program(
        "data_disk.sh",
        "inflight_start.sh",
        STATE_DIR=STATE_DIR,
        INFLIGHT_BASES=INFLIGHT_BASES,
        INFLIGHT_WRITER=program(
            "clock_jump.sh",
            "inflight_writer.sh",
            STATE_DIR=STATE_DIR,
            INFLIGHT_STEP_MIB=INFLIGHT_STEP_MIB,
            INFLIGHT_STEPS=INFLIGHT_STEPS,
            INFLIGHT_PACE_S=INFLIGHT_PACE_S,
        ),
    ),
    after=_SLICE_SUM
    + program("data_disk.sh", "inflight_after.sh", STATE_DIR=STATE_DIR, BOUNDED_WAIT=BOUNDED_WAIT),
)

# Before the sleep the network is read over ssh with the other facts (one round trip); after
# the wake it is read through the agent, beside the facts script (see cycle._capture_after).
NET = Probe(name="net", before=NET_SCRIPT, after="")

DEFAULT_PROBES = (IDENTITY, KERNEL_LOG, NET, SENTINEL, DISK, BLOCK, DEVICE_PM)
# Across a clean shutdown and a fresh boot only the disk keeps anything: the sentinel and the
# in-flight block write are gone by design, and waiting for them would only cost time.
AFTER_REBOOT_PROBES = (IDENTITY, KERNEL_LOG, DISK)

_CAPTURE = program("capture.sh", STATE_DIR=STATE_DIR)


def script(probes: tuple[Probe, ...], phase: str) -> str:
    """One script for ``phase``: each probe's fragment as a shell function ``probe_<name>``,
    run by scripts/capture.sh's run_probes, the first alone, the others side by side."""
    parts = [(probe.name, getattr(probe, phase).strip()) for probe in probes]
    parts = [(name, part) for name, part in parts if part]
    if not parts:
        return "\n"
    functions = "".join(f"probe_{name}() {{\n{part}\n}}\n" for name, part in parts)
    return _CAPTURE + functions + f"run_probes {' '.join(name for name, _ in parts)}\n"


def probe_seconds(facts: dict[str, str]) -> dict[str, float]:
    """How long each probe took, popped out of ``facts`` (the ``time.*`` marks)."""
    edges: dict[str, dict[str, float]] = {}
    for key in [k for k in facts if k.startswith(TIME_MARK_PREFIX)]:
        value = facts.pop(key)
        name, _, edge = key.removeprefix(TIME_MARK_PREFIX).rpartition(".")
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

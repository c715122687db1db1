"""Swap and resume misconfigurations, made in a running guest just before its sleep request
(small guest-side changes over ssh, so that one profile's image serves every case):

- a swapfile recreated (its blocks now elsewhere), so the kernel command line's
  ``resume_offset`` is stale: systemd (252) then refuses to hibernate; where the kernel is
  told the file's new place at run time (``kernel_told_resume_location``, as systemd-sleep
  does where it hibernates), the image is written there and the next boot looks where the
  command line says;
- only zram swap left: systemd offers no hibernation (it never hibernates to zram);
- a swap device smaller than the image: the kernel refuses while writing it.

The cases made on the kernel command line instead (``resume=`` empty, ``resume_offset``
missing) are ``harness.setup.guest_profiles.cmdline_args``.
"""

from __future__ import annotations

from harness.cycle.faults import BEFORE_REQUEST, Fault
from harness.errors import SetupError
from harness.machines.protocol import Machine

ZRAM_MIB = 256
SMALL_SWAP_KIB = 4096  # far below the smallest image (tens of MiB even compressed)

RECREATE_SWAPFILE = """set -e
path=$(awk '$2 == "file" {print $1; exit}' /proc/swaps)
[ -n "$path" ] || { echo "no swapfile in /proc/swaps" >&2; exit 1; }
fallocate -l "$(stat -c %s "$path")" "$path.new"
chmod 600 "$path.new"
mkswap "$path.new" >/dev/null
swapoff "$path"
mv "$path.new" "$path"
swapon "$path"
"""

# What systemd-sleep writes before it hibernates: the swapfile's device and first block.
TELL_KERNEL = """set -e
path=$(awk '$2 == "file" {print $1; exit}' /proc/swaps)
[ -n "$path" ] || { echo "no swapfile in /proc/swaps" >&2; exit 1; }
first=$(filefrag -v "$path" | awk '$1 == "0:" {sub(/\\.\\..*/, "", $4); print $4}')
echo "$first" > /sys/power/resume_offset
findmnt -no MAJ:MIN -T "$path" | tr -d ' ' > /sys/power/resume
"""

ONLY_ZRAM = f"""set -e
swapoff -a
modprobe zram
echo {ZRAM_MIB}M > /sys/block/zram0/disksize
mkswap /dev/zram0 >/dev/null
swapon -p 100 /dev/zram0
cat /proc/swaps
"""

SMALL_SWAP = f"""set -e
dev=$(awk '$2 == "partition" {{print $1; exit}}' /proc/swaps)
[ -n "$dev" ] || {{ echo "no swap partition in /proc/swaps" >&2; exit 1; }}
swapoff "$dev"
mkswap "$dev" {SMALL_SWAP_KIB} >/dev/null 2>&1
swapon "$dev"
cat /proc/swaps
"""


def _run_or_fail(machine: Machine, what: str, script: str) -> None:
    result = machine.run(script)
    if not result.ok:
        raise SetupError(f"fault injection ({what}) failed: {result.stderr.strip()[-300:]}")


def swapfile_recreated() -> Fault:
    """The swapfile deleted and made again (same size, other blocks): resume_offset is stale."""
    return Fault(
        "swapfile recreated before the request (its first block moved: resume_offset stale)",
        lambda m: _run_or_fail(m, "recreate the swapfile", RECREATE_SWAPFILE),
        BEFORE_REQUEST,
    )


def kernel_told_resume_location() -> Fault:
    """The swapfile's device and first block written to /sys/power/resume and resume_offset,
    whatever the kernel command line said."""
    return Fault(
        "the swapfile's place written to /sys/power/resume and resume_offset before the request",
        lambda m: _run_or_fail(m, "tell the kernel the swapfile's place", TELL_KERNEL),
        BEFORE_REQUEST,
    )


def only_zram() -> Fault:
    """Every swap off, and zram swap on at a higher priority: nothing to hibernate to."""
    return Fault(
        f"all swap off, {ZRAM_MIB} MiB zram swap on (priority 100) before the request",
        lambda m: _run_or_fail(m, "only zram swap", ONLY_ZRAM),
        BEFORE_REQUEST,
    )


def swap_smaller_than_image() -> Fault:
    """The swap partition made again at a size no hibernation image fits in."""
    return Fault(
        f"swap partition re-made at {SMALL_SWAP_KIB} KiB before the request (image cannot fit)",
        lambda m: _run_or_fail(m, "shrink the swap", SMALL_SWAP),
        BEFORE_REQUEST,
    )

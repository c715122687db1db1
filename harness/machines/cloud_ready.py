"""When a cloud guest counts as ready: cloud-init has finished (swapfile, agent, resume= set
by the seed), and ``resume=`` is on the running kernel's command line, which takes a second boot
when the seed's script had to put it into the boot loader. Backend-neutral: both the direct
QEMU and the libvirt guests call it from their ``wait_ready``.

The first guest of a run to be seeded keeps its root disk as the seed left it (powered off,
cloud-init disabled, its network not pinned to its NIC) as a qcow2 layer over the base image,
the run's seeded layer: the session backs every later guest's root overlay with it (of either
backend), which then boots already seeded. The layer is published only after the reboot
showed resume= in effect."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from harness.errors import BootTimeout, SetupError
from harness.machines import disks
from harness.machines.protocol import Machine, Signal
from harness.setup.cloud import RESUME_STATUS_COMMAND, SETTLE_COMMAND, ResumeStatus

log = logging.getLogger(__name__)

CLOUD_INIT_DISABLED = "/etc/cloud/cloud-init.disabled"  # cloud-init's own off switch
ROOT_OVERLAY = "root.qcow2"  # both backends' root overlay, in the machine's runtime_dir
SEEDED_LAYER = "seeded.qcow2"  # the run's seeded layer, in the run directory
# cloud-init pins the network it renders to the first boot's NIC (name and MAC), and the
# backends' NICs differ in both: a seeded root boots on another backend with no network
# unless the pin is dropped. Done for systemd-networkd's one file (matched by name pattern
# then); any other renderer's root is not kept, and each backend seeds its own guest.
PORTABLE = "portable-network"
PORTABLE_NETWORK = (
    "set -- /etc/systemd/network/10-cloud-init-*.network; "
    'if [ $# -eq 1 ] && [ -f "$1" ]; then '
    "sed -i '/^MACAddress=/d; s/^Name=.*/Name=en* eth*/' \"$1\" && echo " + PORTABLE + "; fi"
)


def seeded_layer(run_dir: Path) -> Path:
    """Where the run keeps its seeded layer; a machine's runtime_dir is a folder of run_dir."""
    return run_dir / SEEDED_LAYER


def settle(machine: Machine, image_name: str, deadline: float) -> dict[str, float]:
    """Wait for cloud-init, then see to resume=; timings of both."""
    start = time.monotonic()
    machine.run(SETTLE_COMMAND, timeout=_left(deadline))
    timings = {"cloud-init": time.monotonic() - start}
    _boot_again_for_resume(machine, image_name, deadline)
    timings["resume="] = time.monotonic() - start
    return timings


def _boot_again_for_resume(machine: Machine, image_name: str, deadline: float) -> None:
    """resume= takes effect at the next boot: boot once more when the seed's script put it
    into the boot loader; a guest that still boots without it cannot resume from S4."""
    status = _status(machine)
    log.info("%s: resume= on the command line: %s (%s)", machine.name, status.on_cmdline,
             status.method)  # fmt: skip
    if status.on_cmdline:
        return
    if not status.needs_reboot:
        raise SetupError(
            f"{image_name}: cannot set resume= for S4 ({status.method}): give the image "
            "resume= and resume_offset= of a swapfile on its kernel command line, or use one "
            "with btrfs, ext4 or xfs as its root and grubby, update-grub or systemd-boot"
        )
    # Powered off and started again rather than rebooted in place: OVMF under TCG takes
    # about a minute to get past a guest reset, and seconds from a fresh start. cloud-init has
    # done its one run (the seed's instance id stays the same): disabled for the boots that
    # follow, whose stages would redo nothing and hold sshd back by tens of seconds under TCG.
    mark = machine.events.mark()
    said = machine.run(
        f"touch {CLOUD_INIT_DISABLED}; {PORTABLE_NETWORK}; "
        "setsid -f systemctl poweroff </dev/null >/dev/null 2>&1"
    )
    if machine.wait_signal(Signal.POWERED_OFF, mark, _left(deadline)) is None:
        raise BootTimeout("power-off for resume=", _left(deadline), machine.serial_tail())
    portable = PORTABLE in said.stdout.split()
    kept = _keep_seeded_root(machine.runtime_dir) if portable else None
    machine.power_on()
    machine.wait_ready(f"boot after resume= by {status.method}", _left(deadline))
    machine.run(SETTLE_COMMAND, timeout=_left(deadline))
    if not _status(machine).on_cmdline:
        cmdline = machine.run("cat /proc/cmdline").stdout.strip()
        raise SetupError(
            f"{image_name}: the seed set resume= through {status.method}, but the guest "
            f"rebooted without it on its command line ({cmdline}): S4 could not resume; "
            "check the image's boot loader entries"
        )
    if kept is not None:
        _publish(kept)


def _keep_seeded_root(runtime_dir: Path) -> Path | None:
    """Keep the powered-off guest's root overlay, as the seed left it, beside the run's
    seeded layer; the guest goes on on a fresh overlay of it (same guest blocks, so the
    swapfile's resume_offset holds). None where the backend has no root overlay of its own."""
    root = runtime_dir / ROOT_OVERLAY
    if not root.is_file():
        return None
    kept = runtime_dir.parent / f"{runtime_dir.name}.{SEEDED_LAYER}"
    os.replace(root, kept)
    disks.create_overlay(kept, root)
    return kept


def _publish(kept: Path) -> None:
    """Name ``kept`` the run's seeded layer: a hard link, complete when it appears (the
    overlays on ``kept`` still name it); the first guest to publish wins, as every seeded
    root is the same seed's work."""
    with contextlib.suppress(FileExistsError):
        os.link(kept, seeded_layer(kept.parent))


def _status(machine: Machine) -> ResumeStatus:
    return ResumeStatus.parse(machine.run(RESUME_STATUS_COMMAND).stdout)


def _left(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())

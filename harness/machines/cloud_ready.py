"""When a cloud guest counts as ready: cloud-init has finished (swapfile, agent, resume= set
by the seed), and ``resume=`` is on the running kernel's command line, which takes a second boot
when the seed's script had to put it into the boot loader. Backend-neutral: both the direct
QEMU and the libvirt guests call it from their ``wait_ready``."""

from __future__ import annotations

import logging
import time

from harness.errors import BootTimeout, SetupError
from harness.machines.protocol import Machine, Signal
from harness.setup.cloud import RESUME_STATUS_COMMAND, SETTLE_COMMAND, ResumeStatus

log = logging.getLogger(__name__)

CLOUD_INIT_DISABLED = "/etc/cloud/cloud-init.disabled"  # cloud-init's own off switch


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
    machine.run(
        f"touch {CLOUD_INIT_DISABLED}; setsid -f systemctl poweroff </dev/null >/dev/null 2>&1"
    )
    if machine.wait_signal(Signal.POWERED_OFF, mark, _left(deadline)) is None:
        raise BootTimeout("power-off for resume=", _left(deadline), machine.serial_tail())
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


def _status(machine: Machine) -> ResumeStatus:
    return ResumeStatus.parse(machine.run(RESUME_STATUS_COMMAND).stdout)


def _left(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())

"""The checks that follow a guest's USB devices, display and balloon (``--usb``,
``--display``, ``--balloon``; harness.machines.devices) across a sleep.

Each needs the host to act on its device through QEMU's monitor (an input event, a screendump,
the balloon's statistics), so each is a step the cycle runs on the host before the sleep
request and after the wake, its facts put into the evidence under ``usb.*``, ``display.*`` and
``balloon.*``, and a pure check that judges them. A step never raises: what it could not do is
a fact the check reports. A guest without these devices gets no step and no check.

- USB: the USB devices the guest enumerated before the sleep (sysfs ``/sys/bus/usb/devices``,
  each with the drivers of its interfaces) are there after the wake with the same drivers, and
  an input event sent by the host (QMP ``input-send-event`` to the tablet and to the keyboard)
  reaches the guest's evdev node of each, within USB_INPUT_S.
- Display: the guest fills its framebuffer (``/dev/fb0``) with one grey, and a QMP screendump
  must show it (a band at the bottom of the screen, below fbcon's text) within DISPLAY_S; once
  before the sleep, and after the wake with another grey.
- Balloon: with the balloon's statistics polled every BALLOON_POLL_S, the guest's statistics
  arrive again (``guest-stats``'s ``last-update`` advances) within BALLOON_S of the wake.
"""

from harness.checks.peripherals.balloon import BALLOON_POLL_S, BALLOON_S, balloon_stats
from harness.checks.peripherals.display import (
    BAND_ROWS,
    DISPLAY_S,
    GREY_AFTER,
    GREY_BEFORE,
    band_shown,
    display_name,
    display_updates,
    parse_ppm,
)
from harness.checks.peripherals.usb import USB_INPUT_S, parse_usb, usb_healthy
from harness.checks.peripherals.watch import PeripheralWatch, Step

__all__ = [
    "BALLOON_POLL_S",
    "BALLOON_S",
    "BAND_ROWS",
    "DISPLAY_S",
    "GREY_AFTER",
    "GREY_BEFORE",
    "USB_INPUT_S",
    "PeripheralWatch",
    "Step",
    "balloon_stats",
    "band_shown",
    "display_name",
    "display_updates",
    "parse_ppm",
    "parse_usb",
    "usb_healthy",
]

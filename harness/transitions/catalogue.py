"""The named transitions: every in-guest way into S3, s2idle, S1, S4 and hybrid sleep and
back, each a combination of the parts in ``harness.transitions.parts``, with the shared
pieces the host-side paths reuse."""

from __future__ import annotations

from harness.machines.protocol import Signal
from harness.transitions.entries import ConsoleEntry, PlatformEntry
from harness.transitions.parts import (
    K_HIB_ENTRY,
    K_HIB_EXIT,
    K_IMAGE_LOADED,
    K_IMAGE_WRITTEN,
    K_S2IDLE_ENTRY,
    K_S3_ACPI_WAKE,
    K_S3_ENTRY,
    K_SUSPEND_EXIT,
    Needs,
    Transition,
)
from harness.transitions.requests import AgentCommand, InGuestCommand
from harness.transitions.wakes import (
    POWER_BUTTON,
    PS2_KEYBOARD,
    USB_KEYBOARD,
    VIRTIO_KEYBOARD,
    AwaitGuestResume,
    AwaitPlatformWake,
    PowerLossRelaunch,
    PressWakeSource,
    Relaunch,
    SendKey,
    SystemWakeup,
    WakeSource,
)


def _s2idle_script(state_command: str) -> str:
    """Enable the keyboard as a wake source and show the kernel's PM debug lines on the console,
    so that the harness can see the guest reach the idle loop before pressing a key."""
    return (
        "echo enabled > /sys/devices/platform/i8042/serio0/power/wakeup; "
        "echo 1 > /sys/power/pm_debug_messages; dmesg -n 8; "
        f"{state_command}; dmesg -n 7; echo 0 > /sys/power/pm_debug_messages"
    )


def _disk_mode(mode: str) -> InGuestCommand:
    return InGuestCommand(
        script=f"echo {mode} > /sys/power/disk && echo disk > /sys/power/state",
        label=f"echo {mode} > /sys/power/disk; echo disk > /sys/power/state",
    )


S3_NEEDS = Needs(power_states=("mem",), mem_sleep="deep")
S4_NEEDS = Needs(power_states=("disk",), disk_mode="platform", swap=True)
HYBRID_NEEDS = Needs(power_states=("mem", "disk"), mem_sleep="deep", disk_mode="suspend", swap=True)
S3_RECORDS = (K_S3_ENTRY, K_S3_ACPI_WAKE, K_SUSPEND_EXIT)
S4_RECORDS = (K_HIB_ENTRY, K_IMAGE_WRITTEN, K_IMAGE_LOADED, K_HIB_EXIT)
S2IDLE_RECORDS = (K_S2IDLE_ENTRY, K_SUSPEND_EXIT)
HYBRID_RAM_RECORDS = (K_HIB_ENTRY, K_IMAGE_WRITTEN, K_S3_ACPI_WAKE, K_HIB_EXIT)
S3_EVENTS = (Signal.SUSPENDED, Signal.WOKEN)
S4_EVENTS = (Signal.HIBERNATED, Signal.POWERED_OFF)
HYBRID_POWERLOSS_EVENTS = (Signal.SUSPENDED, Signal.POWERED_OFF)
S3_ENTRY = PlatformEntry(signals=(Signal.SUSPENDED,), kernel_state="deep")
STANDBY_ENTRY = PlatformEntry(signals=(Signal.SUSPENDED,), kernel_state="shallow")
S4_ENTRY = PlatformEntry(signals=(Signal.HIBERNATED, Signal.POWERED_OFF), limit="hibernate")
HYBRID_ENTRY = PlatformEntry(signals=(Signal.SUSPENDED,), limit="hibernate")
S2IDLE_ENTRY = ConsoleEntry(pattern=r"PM: suspend-to-idle", kernel_state="s2idle")
RTC_SECONDS = 5

S3_SYSTEMCTL = Transition(
    id="s3-systemctl",
    needs=S3_NEEDS,
    request=InGuestCommand(script="systemctl suspend"),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
S3_AGENT = Transition(
    id="s3-agent",
    needs=S3_NEEDS,
    request=AgentCommand("guest-suspend-ram"),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
S3_SYSFS = Transition(
    id="s3-sysfs",
    needs=S3_NEEDS,
    request=InGuestCommand(script="echo deep > /sys/power/mem_sleep; echo mem > /sys/power/state"),
    entry=S3_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
S3_RTC = Transition(
    id="s3-rtcwake",
    needs=S3_NEEDS,
    request=InGuestCommand(script=f"rtcwake -m mem -s {RTC_SECONDS}"),
    entry=S3_ENTRY,
    wake=AwaitPlatformWake(after_seconds=RTC_SECONDS),
    expected_events=S3_EVENTS,
    kernel_records=S3_RECORDS,
)
S2IDLE = Transition(
    id="s2idle",
    needs=Needs(power_states=("mem",), mem_sleep="s2idle"),
    request=InGuestCommand(
        script=_s2idle_script(
            "old=$(sed 's/.*\\[\\(.*\\)\\].*/\\1/' /sys/power/mem_sleep); "
            "echo s2idle > /sys/power/mem_sleep; echo mem > /sys/power/state; "
            "echo $old > /sys/power/mem_sleep"
        ),
        label="echo s2idle > mem_sleep; echo mem > state",
    ),
    entry=S2IDLE_ENTRY,
    wake=SendKey(),
    kernel_records=S2IDLE_RECORDS,
)
FREEZE = Transition(
    id="freeze",
    needs=Needs(power_states=("freeze",)),
    request=InGuestCommand(
        script=_s2idle_script("echo freeze > /sys/power/state"),
        label="echo freeze > /sys/power/state",
    ),
    entry=S2IDLE_ENTRY,
    wake=SendKey(),
    kernel_records=S2IDLE_RECORDS,
)
STANDBY = Transition(
    id="standby",
    needs=Needs(power_states=("standby",)),
    request=InGuestCommand(script="echo standby > /sys/power/state"),
    entry=STANDBY_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
)
S4_SYSTEMCTL = Transition(
    id="s4-systemctl",
    needs=S4_NEEDS,
    request=InGuestCommand(script="systemctl hibernate"),
    entry=S4_ENTRY,
    wake=Relaunch(),
    expected_events=S4_EVENTS,
    kernel_records=S4_RECORDS,
)
S4_AGENT = Transition(
    id="s4-agent",
    needs=S4_NEEDS,
    request=AgentCommand("guest-suspend-disk"),
    entry=S4_ENTRY,
    wake=Relaunch(),
    expected_events=S4_EVENTS,
    kernel_records=S4_RECORDS,
)
HYBRID_SYSTEMCTL_WAKE = Transition(
    id="hybrid-systemctl-wake",
    needs=HYBRID_NEEDS,
    request=InGuestCommand(script="systemctl hybrid-sleep"),
    entry=HYBRID_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=HYBRID_RAM_RECORDS,
)
HYBRID_SYSTEMCTL_POWERLOSS = Transition(
    id="hybrid-systemctl-powerloss",
    needs=HYBRID_NEEDS,
    request=InGuestCommand(script="systemctl hybrid-sleep"),
    entry=HYBRID_ENTRY,
    wake=PowerLossRelaunch(),
    expected_events=HYBRID_POWERLOSS_EVENTS,
    kernel_records=S4_RECORDS,
)
HYBRID_AGENT_WAKE = Transition(
    id="hybrid-agent-wake",
    needs=HYBRID_NEEDS,
    request=AgentCommand("guest-suspend-hybrid"),
    entry=HYBRID_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=HYBRID_RAM_RECORDS,
)
HYBRID_AGENT_POWERLOSS = Transition(
    id="hybrid-agent-powerloss",
    needs=HYBRID_NEEDS,
    request=AgentCommand("guest-suspend-hybrid"),
    entry=HYBRID_ENTRY,
    wake=PowerLossRelaunch(),
    expected_events=HYBRID_POWERLOSS_EVENTS,
    kernel_records=S4_RECORDS,
)
DISK_PLATFORM = Transition(
    id="disk-platform",
    needs=S4_NEEDS,
    request=_disk_mode("platform"),
    entry=S4_ENTRY,
    wake=Relaunch(),
    expected_events=S4_EVENTS,
    kernel_records=S4_RECORDS,
)
DISK_SHUTDOWN = Transition(
    id="disk-shutdown",
    needs=Needs(power_states=("disk",), disk_mode="shutdown", swap=True),
    request=_disk_mode("shutdown"),
    entry=PlatformEntry(signals=(Signal.POWERED_OFF,), limit="hibernate"),
    wake=Relaunch(),
    expected_events=(Signal.SHUTDOWN, Signal.POWERED_OFF),
    kernel_records=S4_RECORDS,
)
DISK_REBOOT = Transition(
    id="disk-reboot",
    needs=Needs(power_states=("disk",), disk_mode="reboot", swap=True),
    request=_disk_mode("reboot"),
    entry=PlatformEntry(signals=(Signal.RESET,), limit="hibernate"),
    wake=AwaitGuestResume(),
    expected_events=(Signal.RESET,),
    kernel_records=S4_RECORDS,
)
DISK_SUSPEND = Transition(
    id="disk-suspend",
    needs=HYBRID_NEEDS,
    request=_disk_mode("suspend"),
    entry=HYBRID_ENTRY,
    wake=SystemWakeup(),
    expected_events=S3_EVENTS,
    kernel_records=HYBRID_RAM_RECORDS,
)
DISK_TEST_RESUME = Transition(
    id="disk-test_resume",
    needs=Needs(power_states=("disk",), disk_mode="test_resume", swap=True),
    request=_disk_mode("test_resume"),
    entry=ConsoleEntry(pattern=K_HIB_ENTRY, limit="hibernate"),
    wake=AwaitGuestResume(),
    kernel_records=S4_RECORDS,
)

# Wake sources other than system_wakeup and the RTC (docs/devices.md, "Wake sources"): the
# guest enables the source's wakeup in sysfs, enters S3 through /sys/power/state, and the host
# presses the key or button; the platform's WAKEUP is the proof.
_WAKEUP_ENABLE = {
    "ps2": "echo enabled > /sys/devices/platform/i8042/serio0/power/wakeup",
    "usb": "for f in /sys/bus/usb/devices/*/power/wakeup; do echo enabled > $f; done",
    "virtio": "for f in /sys/bus/virtio/devices/*/power/wakeup; do echo enabled > $f; done",
    "": "true",
}


def _wake_source(transition_id: str, source: WakeSource) -> Transition:
    enable = _WAKEUP_ENABLE[source.keyboard]
    return Transition(
        id=transition_id,
        needs=S3_NEEDS,
        request=InGuestCommand(
            script=f"{enable}; echo deep > /sys/power/mem_sleep; echo mem > /sys/power/state",
            label=f"{source.name} wakeup enabled; echo mem > /sys/power/state",
        ),
        entry=S3_ENTRY,
        wake=PressWakeSource(source),
        expected_events=S3_EVENTS,
        kernel_records=S3_RECORDS,
    )


S3_KEY_PS2 = _wake_source("s3-key-ps2", PS2_KEYBOARD)
S3_KEY_USB = _wake_source("s3-key-usb", USB_KEYBOARD)
S3_KEY_VIRTIO = _wake_source("s3-key-virtio", VIRTIO_KEYBOARD)
S3_POWER_BUTTON = _wake_source("s3-power-button", POWER_BUTTON)
WAKE_SOURCES = (S3_KEY_PS2, S3_KEY_USB, S3_KEY_VIRTIO, S3_POWER_BUTTON)

ALL = (
    S3_SYSTEMCTL,
    S3_AGENT,
    S3_SYSFS,
    S3_RTC,
    S2IDLE,
    FREEZE,
    STANDBY,
    S4_SYSTEMCTL,
    S4_AGENT,
    HYBRID_SYSTEMCTL_WAKE,
    HYBRID_SYSTEMCTL_POWERLOSS,
    HYBRID_AGENT_WAKE,
    HYBRID_AGENT_POWERLOSS,
    DISK_PLATFORM,
    DISK_SHUTDOWN,
    DISK_REBOOT,
    DISK_SUSPEND,
    DISK_TEST_RESUME,
    *WAKE_SOURCES,
)
TRANSITIONS = {t.id: t for t in ALL}

"""The names of the facts a cycle records, ``<group>.<key>``, each a constant named after it
(``guest.boot_id`` is GUEST_BOOT_ID).

Most are printed by the guest-side scripts (scripts/*.sh) as ``<group>.<key>=value`` lines;
the checks read them only through these names, and a unit test holds every name not in
HOST_MADE to a script that writes it, so that renaming one side alone fails.
"""

from __future__ import annotations

# The identity probe (scripts/identity.sh).
GUEST_BOOT_ID = "guest.boot_id"
GUEST_UPTIME = "guest.uptime"
GUEST_KERNEL = "guest.kernel"
GUEST_CMDLINE = "guest.cmdline"
GUEST_BIOS_VERSION = "guest.bios_version"
GUEST_POWER_STATE = "guest.power_state"
GUEST_MEM_SLEEP = "guest.mem_sleep"
GUEST_POWER_DISK = "guest.power_disk"
GUEST_SWAPS = "guest.swaps"
GUEST_SUSPEND_SUCCESS = "guest.suspend_success"
GUEST_TAINT = "guest.taint"
GUEST_RAM_MARKER = "guest.ram_marker"
BLK_VDA_REQUESTS = "blk.vda_requests"

# The kernel log probe (scripts/kernel_log_mark.sh).
GUEST_ACPI_STATES = "guest.acpi_states"
GUEST_LOCKDOWN_SAID = "guest.lockdown_said"  # the kernel's "hibernation is restricted" line
GUEST_LOG_MARK = "guest.log_mark"
GUEST_DMESG_LINES = "guest.dmesg_lines"

# The sentinel (scripts/sentinel_facts.sh, scripts/sentinel_after.sh).
SENTINEL_PID = "sentinel.pid"
SENTINEL_COUNT = "sentinel.count"
SENTINEL_ALIVE = "sentinel.alive"
SENTINEL_COUNT_LATER = "sentinel.count_later"

# The root disk's file (scripts/disk_before.sh, scripts/disk_after.sh).
DISK_WRITTEN_SHA = "disk.written_sha"
DISK_REREAD_SHA = "disk.reread_sha"
DISK_FRESH_SHA = "disk.fresh_sha"
DISK_FRESH_WRITE_STATUS = "disk.fresh_write_status"
DISK_FRESH_REREAD_SHA = "disk.fresh_reread_sha"

# The scratch disk (scripts/inflight_start.sh, scripts/inflight_after.sh), whatever its bus.
BLK_PATTERN_SHA = "blk.pattern_sha"
BLK_DISK = "blk.disk"  # its kernel name: vdc, nvme0n1, sda
BLK_DISK_DRIVER = "blk.disk_driver"  # its controller's driver: virtio_blk, nvme, ahci ...
BLK_VDC_REQUESTS = "blk.vdc_requests"
BLK_INFLIGHT_STATUS = "blk.inflight_status"
BLK_INFLIGHT_STEPS = "blk.inflight_steps"  # "<steps written before> <why the pacing ended>"
BLK_INFLIGHT_MIB = "blk.inflight_mib"
BLK_INFLIGHT_SHA = "blk.inflight_sha"
BLK_FRESH_SHA = "blk.fresh_sha"
BLK_FRESH_STATUS = "blk.fresh_status"
BLK_FRESH_REREAD_SHA = "blk.fresh_reread_sha"

# The NIC (scripts/net.sh, or read through the agent: live_probes.net_facts) and the closing
# look (scripts/closing.sh).
NET_IFACE = "net.iface"
NET_DRIVER = "net.driver"
NET_OPERSTATE = "net.operstate"
NET_CARRIER = "net.carrier"
NET_DEVICE = "net.device"
NET_TRANSFERS_ENDED_BEFORE_CLOSING = "net.transfers_ended_before_closing"

# Made on the host, never printed by a guest script.
NET_IRQS = "net.irqs"
NET_RX_PACKETS = "net.rx_packets"  # read through the agent after the wake, before the echo
NET_RX_AFTER_ECHO = "net.rx_after_echo"  # and again where the echo got nothing back
NET_IRQS_AFTER_TRANSFER = "net.irqs_after_transfer"
NET_HOST_TO_GUEST = "net.host_to_guest"
NET_GUEST_TO_HOST = "net.guest_to_host"
CLOCK_STEP_S = "clock.step_s"
CLOCK_UNCERTAINTY_S = "clock.uncertainty_s"
CLOCK_STEP_BEFORE_RESYNC_S = "clock.step_before_resync_s"
CLOCK_ERROR = "clock.error"
TCP_ECHO = "tcp.echo"
TCP_STREAM = "tcp.stream"

HOST_MADE = frozenset(
    {
        NET_IRQS,
        NET_RX_PACKETS,
        NET_RX_AFTER_ECHO,
        NET_IRQS_AFTER_TRANSFER,
        NET_HOST_TO_GUEST,
        NET_GUEST_TO_HOST,
        CLOCK_STEP_S,
        CLOCK_UNCERTAINTY_S,
        CLOCK_STEP_BEFORE_RESYNC_S,
        CLOCK_ERROR,
        TCP_ECHO,
        TCP_STREAM,
    }
)

# Each probe's time by the guest's clock, ``time.<probe>.start`` and ``time.<probe>.end``
# (scripts/capture.sh, scripts/closing.sh): popped by probes.probe_seconds, never judged.
TIME_MARK_PREFIX = "time."

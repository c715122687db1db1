#!/bin/sh
# The kernel log probe, before the sleep only (after acpi_states_ready.sh): prints
# guest.acpi_states and guest.lockdown_said (where the kernel said it), then writes a line of the harness's own to the kernel log, after which
# the closing look keeps what the kernel logged (live_probes.split_closing): prints it as
# guest.log_mark. Where the kernel takes no lines from userspace (printk.devkmsg=off) it
# prints the count of the log's lines instead, guest.dmesg_lines.
# Settings: STATE_DIR, KERNEL_LOG_MARK (the line's text; the capture's number follows it,
# which makes it unique within a boot).
# Shell builtins only where the kernel takes the line: counting the log's lines starts dmesg
# and wc, which cost a TCG guest tens of ms at every capture before a sleep.
v=; read -r v < "$STATE_DIR/acpi_states"; echo "guest.acpi_states=$v"
v=; read -r v 2>/dev/null < "$STATE_DIR/lockdown_said"; [ -z "$v" ] || echo "guest.lockdown_said=$v"
r=0; read -r r 2>/dev/null < "$STATE_DIR/round"
m=; read -r m 2>/dev/null < /proc/sys/kernel/printk_devkmsg
if [ "$m" != off ] && { echo "<6>$KERNEL_LOG_MARK $r" > /dev/kmsg; } 2>/dev/null; then
  echo "guest.log_mark=$KERNEL_LOG_MARK $r"
else echo "guest.dmesg_lines=$(dmesg | wc -l)"; fi

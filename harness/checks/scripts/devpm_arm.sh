#!/bin/sh
# The device PM probe before a sleep: writes a mark into the kernel's trace buffer, after which
# devpm_after.sh reads how long each driver's suspend and resume callbacks took, from the
# device_pm_callback_start and device_pm_callback_end trace events (tracefs). Once a boot (or
# once for the ready checkpoint, whose restores inherit it) it mounts tracefs where the image
# has not, gives the buffer DEVPM_BUFFER_KB a CPU and turns the two events on; they stay on
# (they fire only while devices suspend and resume). Prints devpm.armed (the tracefs folder,
# or no where the guest has none).
# Settings: DEVPM_MARK (the mark's text).
# Trace events, not pm_print_times: those print a console line per callback, which a serial
# console at 115200 baud turns into seconds of a TCG guest's suspend. No reset of the buffer
# and no event turned on or off at every capture: each waits on the kernel's RCU and code
# patching, tenths of a second to a TCG guest; a mark is one write.
t=/sys/kernel/tracing
[ -d "$t/events/power" ] || mount -t tracefs tracefs "$t" 2>/dev/null || t=/sys/kernel/debug/tracing
e="$t/events/power/device_pm_callback"
if [ -w "$t/trace_marker" ] && [ -w "${e}_start/enable" ]; then
  v=; read -r v < "${e}_start/enable"
  if [ "$v" != 1 ]; then
    echo "$DEVPM_BUFFER_KB" > "$t/buffer_size_kb"
    echo 1 > "${e}_start/enable"; echo 1 > "${e}_end/enable"; echo 1 > "$t/tracing_on"
  fi
  echo "$DEVPM_MARK" > "$t/trace_marker"
  echo "devpm.armed=$t"
else echo "devpm.armed=no"; fi

#!/bin/sh
# The device PM probe before a sleep: empties the trace buffer and turns on the kernel's
# device_pm_callback_start and device_pm_callback_end trace events (tracefs), so that after
# the wake devpm_after.sh can tell how long each driver's suspend and resume callbacks took.
# Prints devpm.armed (the tracefs folder, or no where the guest has none).
# Trace events, not pm_print_times: those print a console line per callback, which a serial
# console at 115200 baud turns into seconds of a TCG guest's suspend.
# Builtins only, but for mounting tracefs where the guest has not (once a boot: the mount
# outlives S3 and S4): it runs at every capture before a sleep.
t=/sys/kernel/tracing
[ -d "$t/events/power" ] || mount -t tracefs tracefs "$t" 2>/dev/null || t=/sys/kernel/debug/tracing
if [ -w "$t/events/power/device_pm_callback_start/enable" ] && : > "$t/trace" 2>/dev/null; then
  echo 1 > "$t/events/power/device_pm_callback_start/enable"
  echo 1 > "$t/events/power/device_pm_callback_end/enable"
  echo 1 > "$t/tracing_on"
  echo "devpm.armed=$t"
else echo "devpm.armed=no"; fi

#!/bin/sh
# The fault whereby the guest wakes with its agent silent and a CPU that stalls
# (faults.cpu_stall_on_wake), set up before the request: writes the CPU stall (CPU_STALL, the
# code of cpu_stall.sh, followed by letting the agent go) to /usr/local/sbin/s3s4-cpu-stall and
# the systemd-sleep hook HOOK (HOOK_PATH) that starts it after the resume, then stops the
# agent (SIGSTOP). Prints nothing.
# Settings: CPU_STALL, HOOK, HOOK_PATH.
cat > /usr/local/sbin/s3s4-cpu-stall <<EOF_STALL
$CPU_STALL
pkill -CONT -x qemu-ga
EOF_STALL
cat > "$HOOK_PATH" <<EOF_HOOK
$HOOK
EOF_HOOK
chmod +x "$HOOK_PATH" && pkill -STOP -x qemu-ga

#!/bin/sh
# The loop for the vCPU lockup fault (faults.vcpu_lockup_while_entering), before the request:
# writes the spinning program arriving on its input to SPIN_PATH and starts it on CPU 1 only,
# ahead of everything else there (SCHED_FIFO, no RT throttling), in its own session. Prints
# nothing.
# Settings: SPIN_PATH.
# The freezer gives up on a task after pm_freeze_timeout (20 s by default) and the kernel then
# logs that it left the sleep sequence, which would end the entry wait before the lockup watch
# has had its time: the freezer is given longer than any entry limit.
cat > "$SPIN_PATH" && chmod +x "$SPIN_PATH" \
  && sysctl -qw kernel.sched_rt_runtime_us=-1 \
  && echo 600000 > /sys/power/pm_freeze_timeout \
  && { setsid chrt -f 99 taskset -c 1 "$SPIN_PATH" </dev/null >/dev/null 2>&1 & }

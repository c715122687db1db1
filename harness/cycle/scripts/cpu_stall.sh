#!/bin/sh
# The CPU stall (faults.cpu_stall, after the wake; also written into the guest by
# stall_on_wake.sh): a real-time busy loop owns CPU 1 for 15 s, RCU's grace-period kthread
# bound there, so that the kernel reports the stall, as it does for a vCPU that stops taking
# its timer interrupts. Prints nothing.
# RCU reports a grace period older than its stall timeout (21 s by default): the timeout is
# lowered to 5 s while the loop runs and put back after, so that the report comes out without
# a 21 s hold, with 10 s to spare before the loop ends.
# The loop counts by bash's own clock: no process to wake, which the loop would starve. Only a
# grace period already started when the loop takes the CPU can stall (the starved kthread
# starts no new one): programs exiting on CPU 0 meanwhile queue RCU callbacks, so that grace
# periods follow each other and one is in progress then; a quiet guest may have none.
# shellcheck disable=SC2016  # the loops count by their own bash's $SECONDS
stall_timeout=/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout
default_timeout="$(cat "$stall_timeout")"
echo 5 > "$stall_timeout" \
  && sysctl -qw kernel.sched_rt_runtime_us=-1 \
  && taskset -pc 1 "$(pgrep -x rcu_preempt)" >/dev/null \
  && { taskset -c 0 bash -c 'while [ $SECONDS -lt 3 ]; do /bin/true; done' & } \
  && chrt -f 99 taskset -c 1 bash -c 'while [ $SECONDS -lt 15 ]; do :; done'
wait; sysctl -qw kernel.sched_rt_runtime_us=950000; echo "$default_timeout" > "$stall_timeout"

#!/bin/bash
# The in-flight write: the pattern written to the data disk $1 (/dev/vdc, /dev/nvme0n1 ...) at
# MiB $0 onwards, in
# direct steps of INFLIGHT_STEP_MIB paced by the guest's own clock (INFLIGHT_PACE_S between
# two), so that the write is still going on when the guest freezes. The pacing ends on the
# first of: the guest is seen to have slept (its suspend counter moved, or note_clock_jump
# saw its boot clock jump), the probe after the transition says it is over (a word on
# STATE_DIR/blk.tick: a host save is invisible to the guest), or INFLIGHT_STEPS steps are
# written. After a sleep one step more goes at once, with fsync: the woken guest's first I/O.
# Started by inflight_start.sh; prints nothing. Leaves in STATE_DIR: blk.pid (its pid),
# inflight.steps ("<steps written before> <why the pacing ended>": slept, after, paced or
# failed), inflight.mib (all the MiBs written) and inflight.status (dd's status, last).
# Settings: STATE_DIR, INFLIGHT_STEP_MIB, INFLIGHT_STEPS, INFLIGHT_PACE_S; runs after
# clock_jump.sh.
# Each step starts a dd, which costs a TCG guest tens of ms taken from its own way to sleep:
# hence a slow pace, and the rest of the pattern is not written after the wake.
# shellcheck disable=SC2034  # last is read by note_clock_jump (clock_jump.sh)
echo $$ > "$STATE_DIR/blk.pid"; exec 3<>"$STATE_DIR/blk.tick"; base=$0; disk=$1
read -r slept < /sys/power/suspend_stats/success
i=0; rc=0; last=; jumped=; over=; why=paced
step() { dd if="$STATE_DIR/pattern" of="$disk" bs="${INFLIGHT_STEP_MIB}M" skip=$i \
  seek=$((base + i)) count=1 oflag=direct "$@" 2>/dev/null; }
while [ $i -lt "$INFLIGHT_STEPS" ]; do
  read -r now < /sys/power/suspend_stats/success; [ "$now" = "$slept" ] || { why=slept; break; }
  note_clock_jump; [ -n "$jumped" ] && { why=slept; break; }
  [ -n "$over" ] && { why=after; break; }
  step || { rc=$?; why=failed; break; }
  i=$((i + 1)); read -r -t "$INFLIGHT_PACE_S" -u 3 over
done
echo "$i $why" > "$STATE_DIR/inflight.steps"
# shellcheck disable=SC2015  # i=$((i + 1)) cannot fail: rc is the fsync'ed step's status
if [ $why = slept ]; then step conv=fsync && i=$((i + 1)) || rc=$?; fi
echo $i > "$STATE_DIR/inflight.mib"
echo $rc > "$STATE_DIR/inflight.status"

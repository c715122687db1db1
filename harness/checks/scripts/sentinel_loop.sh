#!/bin/bash
# The sentinel: a process that counts on, ten times a second, into STATE_DIR/count, its pid
# in STATE_DIR/sentinel.pid. After a wake the checks want the same process alive and still
# counting. Started in its own session by sentinel_start.sh; prints nothing.
# Settings: STATE_DIR.
# Shell builtins only (bash's `read -t` on a FIFO nobody writes to as its sleep, the count
# overwritten in place): a loop that starts programs every tick keeps a TCG guest's vCPU busy
# and slows everything the guest does.
exec 3<>"$STATE_DIR/tick"; echo $$ > "$STATE_DIR/pid.new"
mv "$STATE_DIR/pid.new" "$STATE_DIR/sentinel.pid"; i=0
while :; do i=$((i+1)); printf "%s\n" $i 1<> "$STATE_DIR/count"; read -r -t 0.1 -u 3; done

#!/bin/sh
# Starts the sentinel (sentinel_loop.sh) unless one from this boot still runs, and waits until
# it has written its pid and its first count. Runs in the sentinel probe before a sleep and
# when the ready checkpoint is warmed up: one sentinel per boot carries on across every cycle
# of that boot, as starting one costs a TCG guest tenths of a second of its CPU; one that
# is gone (killed, or a reboot) is started again. Prints nothing.
# Settings: STATE_DIR, SENTINEL_LOOP and BOUNDED_WAIT (the programs' code).
pid=; read -r pid 2>/dev/null < "$STATE_DIR/sentinel.pid"
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
  mkdir -p "$STATE_DIR"; rm -f "$STATE_DIR/sentinel.pid" "$STATE_DIR/count" "$STATE_DIR/tick"
  mkfifo "$STATE_DIR/tick"
  setsid bash -c "$SENTINEL_LOOP" </dev/null >/dev/null 2>&1 &
  export STATE_DIR  # read by the bounded wait's test
  bash -c "$BOUNDED_WAIT" "" "$STATE_DIR/tick" 10 0.02 \
    '[ -s "$STATE_DIR/count" ] && [ -s "$STATE_DIR/sentinel.pid" ]'
fi

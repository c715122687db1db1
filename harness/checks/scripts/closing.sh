#!/bin/sh
# The closing look, appended to the facts script after a wake: waits for the transfers running
# beside it to end (transfer.sh leaves TOKEN in STATE_DIR/transferred; at most
# TRANSFERS_WAIT_S), then prints net.transfers_ended_before_closing (yes or no), its
# time.closing.* marks, the line KERNEL_LOG_CUT and the whole kernel log after it, which
# therefore holds whatever the checks provoked. The host cuts the log
# (live_probes.split_closing): a program fewer in the guest, and the log is bounded by its
# ring buffer. Saves the closing look a round trip of its own.
# Settings: STATE_DIR, TOKEN, TRANSFERS_WAIT_S, KERNEL_LOG_CUT, BOUNDED_WAIT (its code).
read -r _t _ < /proc/uptime; echo "time.closing.start=$_t"
t=; read -r t 2>/dev/null < "$STATE_DIR/transferred"
if [ "$t" = "$TOKEN" ]; then seen=yes; else
  [ -p "$STATE_DIR/closing.wait" ] || mkfifo "$STATE_DIR/closing.wait"
  export STATE_DIR  # read by the bounded wait's test
  bash -c "$BOUNDED_WAIT" "$TOKEN" "$STATE_DIR/closing.wait" "$TRANSFERS_WAIT_S" 0.02 \
    'read -r t 2>/dev/null < "$STATE_DIR/transferred" && [ "$t" = "$0" ]'
  seen=no; read -r t 2>/dev/null < "$STATE_DIR/transferred" && [ "$t" = "$TOKEN" ] && seen=yes
fi
echo "net.transfers_ended_before_closing=$seen"
read -r _t _ < /proc/uptime; echo "time.closing.end=$_t"
echo "$KERNEL_LOG_CUT"; dmesg -x --notime

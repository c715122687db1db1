#!/bin/sh
# The fault that makes the guest's disk file systems read-only after the wake
# (faults.root_filesystem_read_only): sysrq's emergency remount, what ext4's errors=remount-ro
# does after an I/O error, so that no new write lands. Waits (at most 10 s) until /proc/mounts
# shows the root read-only; prints nothing, and fails with a word on stderr when it is not.
# Settings: STATE_DIR, BOUNDED_WAIT (the program's code).
[ -p "$STATE_DIR/remount.wait" ] || mkfifo "$STATE_DIR/remount.wait"
echo 1 > /proc/sys/kernel/sysrq; echo u > /proc/sysrq-trigger
bash -c "$BOUNDED_WAIT" "" "$STATE_DIR/remount.wait" 10 0.05 \
  'grep -q "^[^ ]* / [^ ]* ro[ ,]" /proc/mounts'
grep -q "^[^ ]* / [^ ]* ro[ ,]" /proc/mounts \
  || { echo 'the root file system is still read-write' >&2; exit 1; }

#!/bin/sh
# The share probe after the wake: reads back the file written before the sleep, then writes a
# new one with a fresh token and reads it back. A share whose transport did not come back
# leaves the guest's requests waiting for good, and a killed request waits again for its
# flush: so the steps run in a job of their own, writing into STATE_DIR/share.after, and the
# probe waits for them SHARE_IO_S at most, then prints what they wrote (share.reread,
# share.after_token, share.after_reread or share.after_error) and, if they are not done,
# share.stuck. A stuck job is left behind: nothing of it holds the capture's output.
# Settings: SHARE_MNT, SHARE_IO_S, STATE_DIR, BOUNDED_WAIT (its code).
out="$STATE_DIR/share.after"
rm -f "$out.done"
[ -p "$STATE_DIR/share.wait" ] || mkfifo "$STATE_DIR/share.wait"
(
  if reread=$(cat "$SHARE_MNT/before" 2>&1); then
    echo "share.reread=$reread"
  else
    echo "share.reread=error: $reread"
  fi
  read -r token < /proc/sys/kernel/random/uuid
  # shellcheck disable=SC2016  # $1 and $2 are the inner shell's arguments
  if err=$(sh -c 'echo "$1" > "$2/after" && sync "$2/after"' sh "$token" "$SHARE_MNT" 2>&1)
  then
    echo "share.after_token=$token"
    echo "share.after_reread=$(cat "$SHARE_MNT/after" 2>&1)"
  else
    echo "share.after_error=$err"
  fi
  : > "$out.done"
) > "$out" 2>&1 < /dev/null &
export STATE_DIR  # read by the bounded wait's test
bash -c "$BOUNDED_WAIT" "$out.done" "$STATE_DIR/share.wait" "$SHARE_IO_S" 0.05 '[ -e "$0" ]'
while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done < "$out"
[ -e "$out.done" ] || echo "share.stuck=no answer through the share within ${SHARE_IO_S}s"

#!/bin/sh
# The stream: a transfer from the guest over ssh that is under way when it goes to sleep,
# started before the request and read by the host in the background (after
# stream_ready.sh). Prints the data's checksum on a line, then the data, paced by
# stream_pacer.sh, which it becomes.
# Settings: STATE_DIR, STREAM_PACER (the program's code).
[ -p "$STATE_DIR/stream.tick" ] || mkfifo "$STATE_DIR/stream.tick"
cat "$STATE_DIR/stream.sha"
exec bash -c "$STREAM_PACER"

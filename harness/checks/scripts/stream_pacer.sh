#!/bin/bash
# Prints the stream's data (STATE_DIR/stream.bin) in STREAM_CHUNKS chunks of STREAM_CHUNK
# bytes, paced by the guest's own clock while the guest is awake before the sleep, so that the
# stream is in flight when it freezes. Once the guest is seen to have slept the rest goes
# unpaced: its suspend counter moved, or its boot clock jumped by over a second between two
# chunks (note_clock_jump, clock_jump.sh): hybrid sleep writes its image with tasks frozen and
# counts no suspend, and a stream paced to its end would hold up the checks after the wake.
# Settings: STATE_DIR, STREAM_CHUNK, STREAM_CHUNKS; runs after clock_jump.sh.
# The pause is bash's `read -t` on a FIFO nobody writes to, not a `sleep` program: the pacing
# runs while the guest goes to sleep, and every program started then slows that.
# shellcheck disable=SC2034  # last is read by note_clock_jump (clock_jump.sh)
exec 3<>"$STATE_DIR/stream.tick"; i=0; read -r slept < /sys/power/suspend_stats/success
last=; jumped=; paced=yes
while [ $i -lt "$STREAM_CHUNKS" ]; do
  dd if="$STATE_DIR/stream.bin" bs="$STREAM_CHUNK" skip=$i count=1 2>/dev/null; i=$((i + 1))
  read -r now < /sys/power/suspend_stats/success; [ "$now" = "$slept" ] || paced=
  note_clock_jump; [ -n "$jumped" ] && paced=
  [ -n "$paced" ] && read -r -t 0.15 -u 3
done; exit 0

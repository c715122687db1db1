#!/bin/sh
# The block probe before a sleep (after slice_sum.sh): prints blk.pattern_sha (the pattern's
# checksum) and blk.vdc_requests (the scratch disk's requests so far), then starts the
# in-flight write (inflight_writer.sh) in its own session and leaves it running across the
# sleep. Each capture writes at another offset, INFLIGHT_BASES of them picked by round (noted
# in STATE_DIR/inflight.base), so that a write that was lost reads back as an earlier cycle's
# data at that offset, never as the pattern expected there.
# Settings: STATE_DIR, INFLIGHT_BASES, INFLIGHT_WRITER (the program's code).
# shellcheck disable=SC2154  # round: set by slice_sum.sh, which runs first
v=; read -r v < "$STATE_DIR/pattern.sha"; echo "blk.pattern_sha=$v"
# Emptied, not removed, and the FIFO kept (what is written to one nobody holds open is
# dropped): two programs fewer while the guest goes to sleep.
: > "$STATE_DIR/inflight.status"; : > "$STATE_DIR/inflight.steps"; : > "$STATE_DIR/inflight.mib"
: > "$STATE_DIR/blk.pid"; [ -p "$STATE_DIR/blk.tick" ] || mkfifo "$STATE_DIR/blk.tick"
base=$((round % INFLIGHT_BASES)); echo $base > "$STATE_DIR/inflight.base"
read -r r _ _ _ w _ < /sys/block/vdc/stat; echo "blk.vdc_requests=$((r + w))"
setsid bash -c "$INFLIGHT_WRITER" $base </dev/null >/dev/null 2>&1 &

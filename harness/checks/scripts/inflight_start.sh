#!/bin/sh
# The block probe before a sleep (after slice_sum.sh): prints blk.pattern_sha (the pattern's
# checksum), blk.disk and blk.disk_driver (the data disk data_disk.sh found and its
# controller's driver) and blk.vdc_requests (its requests so far), then starts the
# in-flight write (inflight_writer.sh) in its own session and leaves it running across the
# sleep. Each capture writes at another offset, INFLIGHT_BASES of them picked by round (noted
# in STATE_DIR/inflight.base), so that a write that was lost reads back as an earlier cycle's
# data at that offset, never as the pattern expected there.
# Settings: STATE_DIR, INFLIGHT_BASES, INFLIGHT_WRITER (the program's code).
# shellcheck disable=SC2154  # round, data_disk...: set by slice_sum.sh, data_disk.sh
v=; read -r v < "$STATE_DIR/pattern.sha"; echo "blk.pattern_sha=$v"
# Emptied, not removed, and the FIFO kept (what is written to one nobody holds open is
# dropped): two programs fewer while the guest goes to sleep.
: > "$STATE_DIR/inflight.status"; : > "$STATE_DIR/inflight.steps"; : > "$STATE_DIR/inflight.mib"
: > "$STATE_DIR/blk.pid"; [ -p "$STATE_DIR/blk.tick" ] || mkfifo "$STATE_DIR/blk.tick"
base=$((round % INFLIGHT_BASES)); echo $base > "$STATE_DIR/inflight.base"
echo "blk.disk=$data_disk"; echo "blk.disk_driver=$data_disk_driver"
read -r r _ _ _ w _ < "/sys/block/$data_disk/stat"; echo "blk.vdc_requests=$((r + w))"
setsid bash -c "$INFLIGHT_WRITER" $base "$data_disk_dev" </dev/null >/dev/null 2>&1 &

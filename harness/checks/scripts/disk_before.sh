#!/bin/sh
# The disk probe before a sleep (after slice_sum.sh): writes one MiB of the pattern, picked by
# round, to PROBE_FILE on the root disk with fsync, truncating it, and notes which MiB in
# STATE_DIR/disk.slice. Prints its checksum as disk.written_sha once written.
# Settings: STATE_DIR, PROBE_FILE.
# shellcheck disable=SC2154  # round and slices: set by slice_sum.sh, which runs first
: > "$STATE_DIR/disk.slice"
dd if="$STATE_DIR/pattern" of="$PROBE_FILE" bs=1M skip=$((round % slices)) count=1 conv=fsync \
  2>/dev/null && echo "disk.written_sha=$(slice_sum "$round")" \
  && echo $((round % slices)) > "$STATE_DIR/disk.slice"

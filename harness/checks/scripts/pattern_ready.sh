#!/bin/sh
# Makes the pattern once per boot: random data the checks write and compare, kept in tmpfs
# (STATE_DIR/pattern) with its checksum (pattern.sha) and each MiB's (slices.sha). Runs at the
# start of the identity probe and when the ready checkpoint is warmed up (which therefore
# holds it already). Prints nothing.
# Settings: STATE_DIR, PATTERN_MIB (the pattern's size).
# Made once and looked up after: urandom and sha256 of tens of MiB cost a TCG guest seconds, so
# a write after a wake takes a MiB of the pattern (another each time, see slice_sum.sh) rather
# than fresh random data, and its checksum is read, not computed again.
[ -d "$STATE_DIR" ] || mkdir -p "$STATE_DIR"
if [ ! -s "$STATE_DIR/slices.sha" ]; then
  head -c $((PATTERN_MIB * 1048576)) /dev/urandom > "$STATE_DIR/pattern"
  sha256sum < "$STATE_DIR/pattern" | cut -d' ' -f1 > "$STATE_DIR/pattern.sha"
  split -b 1048576 -d -a 2 "$STATE_DIR/pattern" "$STATE_DIR/slice."
  sha256sum "$STATE_DIR"/slice.?? | cut -d' ' -f1 > "$STATE_DIR/slices.sha.new"
  rm -f "$STATE_DIR"/slice.??; mv "$STATE_DIR/slices.sha.new" "$STATE_DIR/slices.sha"
fi

#!/bin/sh
# The block probe after a transition (after slice_sum.sh): tells the in-flight writer that the
# transition is over, waits for it while it lives, and reads back what it wrote. Prints
# blk.inflight_status (dd's, or "unfinished"), blk.inflight_steps, blk.inflight_mib,
# blk.inflight_sha (the pattern's checksum when the data read back is the pattern, else
# "differs from the pattern"), blk.fresh_sha, blk.fresh_status and blk.fresh_reread_sha when
# it writes a fresh MiB (below), blk.disk, blk.disk_driver and blk.vdc_requests, on the data
# disk data_disk.sh found.
# Settings: STATE_DIR, BOUNDED_WAIT (the program's code).
# shellcheck disable=SC2154  # round, slices, data_disk...: set by slice_sum.sh, data_disk.sh
# Opened read-write: never blocks, also when the writer has gone.
[ -p "$STATE_DIR/blk.tick" ] && { echo over >&4; } 4<>"$STATE_DIR/blk.tick"
# Waits for the writer only while it lives (after a reboot it is gone, and so is its pid
# file), for at most 60 s: one program in all while the writer finishes.
p=; read -r p 2>/dev/null < "$STATE_DIR/blk.pid"
[ -s "$STATE_DIR/inflight.status" ] || [ -z "$p" ] || {
  [ -p "$STATE_DIR/blk.wait" ] || mkfifo "$STATE_DIR/blk.wait"
  export STATE_DIR  # read by the bounded wait's test
  bash -c "$BOUNDED_WAIT" "$p" "$STATE_DIR/blk.wait" 60 0.05 \
    '[ -s "$STATE_DIR/inflight.status" ] || ! kill -0 "$0" 2>/dev/null'
}
v=; read -r v 2>/dev/null < "$STATE_DIR/inflight.status"; echo "blk.inflight_status=${v:-unfinished}"
v=; read -r v 2>/dev/null < "$STATE_DIR/inflight.steps"; echo "blk.inflight_steps=$v"
n=; read -r n 2>/dev/null < "$STATE_DIR/inflight.mib"; n=${n:-0}; echo "blk.inflight_mib=$n"
base=0; read -r base 2>/dev/null < "$STATE_DIR/inflight.base"
# Compared byte for byte (cmp costs a TCG guest less than sha256sum): data equal to the
# pattern where it was written has the pattern's checksum; anything else is named as such.
if [ "$n" -gt 0 ] && dd if="$data_disk_dev" bs=1M skip="$base" count="$n" iflag=direct 2>/dev/null \
  | cmp -s -n $((n * 1048576)) - "$STATE_DIR/pattern"
then
  read -r v < "$STATE_DIR/pattern.sha"; echo "blk.inflight_sha=$v"
else echo "blk.inflight_sha=differs from the pattern"; fi
# A write after the wake, read back: the writer's step at the wake (with fsync) was one, read
# back above; only when there was none (a sleep the guest did not see, or the writer gone)
# is a fresh MiB written at 40 MiB: a write and a read-back cost the TCG guest tenths of a
# second of its CPU, on every sleep.
s=; why=; read -r s why 2>/dev/null < "$STATE_DIR/inflight.steps"
if [ "$why" != slept ] || [ "$n" != $((s + 1)) ]; then
  fresh=$((round + 10)); want=$(slice_sum $fresh); echo "blk.fresh_sha=$want"
  dd if="$STATE_DIR/pattern" of="$data_disk_dev" bs=1M skip=$((fresh % slices)) seek=40 count=1 \
    oflag=direct conv=fsync 2>/dev/null
  echo "blk.fresh_status=$?"
  v="differs from the pattern"; dd if="$data_disk_dev" bs=1M skip=40 count=1 iflag=direct 2>/dev/null \
    | cmp -s -n 1048576 - "$STATE_DIR/pattern" 0 $((fresh % slices * 1048576)) && v=$want
  echo "blk.fresh_reread_sha=$v"
fi
echo "blk.disk=$data_disk"; echo "blk.disk_driver=$data_disk_driver"
read -r r _ _ _ w _ < "/sys/block/$data_disk/stat"; echo "blk.vdc_requests=$((r + w))"

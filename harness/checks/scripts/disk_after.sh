#!/bin/sh
# The disk probe after a transition (after slice_sum.sh): writes the pattern's MiB after the
# one written before the sleep behind it in PROBE_FILE, then reads both back. Prints
# disk.fresh_sha (the fresh MiB's checksum), disk.fresh_write_status (dd's), disk.reread_sha
# (what the MiB written before reads back as) and disk.fresh_reread_sha (the fresh MiB's);
# either reads "differs from the pattern" when its data is not the MiB written.
# Settings: STATE_DIR, PROBE_FILE.
# Reads go around the page cache with O_DIRECT rather than after dropping every cache: the
# probes running beside this one would then read their programs from disk again. Both MiBs
# are read back in one `dd | cmp`: each program costs a TCG guest tens of ms while it still
# resumes. Only when that differs are the two compared apart, to name which. While tmpfs
# notes which MiB was written (not across a reboot, after which the pattern is made again)
# the file is compared with the pattern byte for byte, else its first MiB is hashed (cmp costs
# a TCG guest less than sha256sum). The write before truncated the file, so a fresh write that
# never reached the disk reads back short, never as the MiB expected.
# shellcheck disable=SC2154  # round and slices: set by slice_sum.sh, which runs first
sha=; written=; read -r written 2>/dev/null < "$STATE_DIR/disk.slice"
[ -f "$PROBE_FILE" ] || written=
# The MiB after the one written before, unless that was the pattern's last.
fresh=$((round + 5)); next=
[ -n "$written" ] && [ "$written" -lt $((slices - 1)) ] && fresh=$((written + 1)) && next=yes
want=$(slice_sum $fresh); echo "disk.fresh_sha=$want"
[ -f "$PROBE_FILE" ] && [ -z "$written" ] && {
  sha=$(dd if="$PROBE_FILE" bs=1M count=1 iflag=direct 2>/dev/null | sha256sum); sha=${sha%% *}; }
dd if="$STATE_DIR/pattern" of="$PROBE_FILE" bs=1M skip=$((fresh % slices)) seek=1 count=1 \
  oflag=direct conv=notrunc,fsync 2>/dev/null
echo "disk.fresh_write_status=$?"
v="differs from the pattern"
if [ -n "$next" ] && dd if="$PROBE_FILE" bs=2M count=1 iflag=direct 2>/dev/null \
  | cmp -s -n 2097152 - "$STATE_DIR/pattern" 0 $((written * 1048576))
then sha=$(slice_sum "$written"); v=$want
else
  [ -n "$written" ] && { sha="differs from the pattern"; dd if="$PROBE_FILE" bs=1M count=1 \
    iflag=direct 2>/dev/null | cmp -s -n 1048576 - "$STATE_DIR/pattern" 0 $((written * 1048576)) \
    && sha=$(slice_sum "$written"); }
  dd if="$PROBE_FILE" bs=1M skip=1 count=1 iflag=direct 2>/dev/null \
    | cmp -s -n 1048576 - "$STATE_DIR/pattern" 0 $((fresh % slices * 1048576)) && v=$want
fi
echo "disk.reread_sha=$sha"
echo "disk.fresh_reread_sha=$v"

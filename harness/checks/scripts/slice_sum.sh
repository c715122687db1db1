#!/bin/sh
# Defines slice_sum N, which prints the checksum of the pattern's MiB number N (modulo the
# pattern's MiBs, $slices) from slices.sha, and sets round: how many fact captures the
# identity probe has counted (it moves the count first, alone). Each write picks its MiB of
# the pattern by round, so that one that never reached the disk reads back as an earlier
# capture's MiB, never as the one expected. Runs at the start of the disk and block probes'
# fragments, which use both. Prints nothing.
# Settings: STATE_DIR, PATTERN_MIB.
# shellcheck disable=SC2034  # round is read by the fragments that follow this one
slices=$PATTERN_MIB
slice_sum() { n=$(($1 % slices)); i=0; while read -r s; do
  [ $i = $n ] && { echo "$s"; return; }; i=$((i + 1)); done < "$STATE_DIR/slices.sha"; }
round=0; read -r round 2>/dev/null < "$STATE_DIR/round"

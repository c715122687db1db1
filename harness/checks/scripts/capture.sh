#!/bin/sh
# The frame of a capture (probes.script): defines run_probes FIRST OTHER..., which runs the
# shell function probe_FIRST alone (it reads counters the others move), then each probe_OTHER
# side by side in a subshell, each into a file of its own (STATE_DIR/facts.OTHER), and prints
# those files in order: under TCG the guest's second vCPU hashes one probe's data while the
# first waits on another's I/O. Around each probe it prints time.PROBE.start and
# time.PROBE.end, the guest's boot clock (a builtin read of /proc/uptime, 10 ms resolution),
# read by probes.probe_seconds and never judged.
# Settings: STATE_DIR.
# One file per probe (one capture at a time runs in a guest), printed and emptied with
# builtins, so that a stale one is never printed again: `cat` and `rm` would cost a TCG guest
# tens of ms a capture.
time_mark() { read -r _t _ < /proc/uptime; echo "time.$1.$2=$_t"; }
# Its own variables start with _: the first probe runs in this shell and sets its own.
run_probes() {
  _first=$1; shift
  time_mark "$_first" start; "probe_$_first"; time_mark "$_first" end
  [ $# -gt 0 ] || return 0
  [ -d "$STATE_DIR" ] || mkdir -p "$STATE_DIR"
  for _p in "$@"; do
    ( time_mark "$_p" start; "probe_$_p"; time_mark "$_p" end ) > "$STATE_DIR/facts.$_p" 2>&1 &
  done
  wait
  for _p in "$@"; do
    while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\n' "$_l"; done < "$STATE_DIR/facts.$_p"
    : > "$STATE_DIR/facts.$_p"
  done
}

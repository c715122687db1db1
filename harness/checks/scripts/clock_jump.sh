#!/bin/bash
# Defines note_clock_jump, for the loops that pace writes across a sleep (stream_pacer.sh,
# inflight_writer.sh; they set last= and jumped= first): sets jumped=yes once the guest's boot
# clock, which counts the time asleep also in hibernation, has moved by over a second (100
# ticks of /proc/uptime) since the last call, which left its look in last. Builtins only.
note_clock_jump() {
  read -r up _ < /proc/uptime; up=$((10#${up%.*}${up#*.}))
  # shellcheck disable=SC2034  # jumped is read by the loop that calls this
  [ -n "$last" ] && [ $((up - last)) -gt 100 ] && jumped=yes; last=$up
}

#!/bin/bash
# The bounded wait: waits until a shell test holds, or a number of seconds has gone by. Run as
# one program by the scripts that wait (bash -c "$BOUNDED_WAIT" ARG FIFO SECONDS PAUSE TEST):
# TEST is eval'ed with ARG as its $0; SECONDS is counted by bash's $SECONDS (between one less
# and that many); between two looks it pauses PAUSE seconds with `read -t` on FIFO, an existing
# FIFO nobody writes to. Prints nothing; its status is the last pause's, which nobody reads.
# No `sleep` program per pause: each program started costs a TCG guest tens of ms, taken from
# what the guest is doing meanwhile.
exec 9<>"$1"
until eval "$4" || [ "$SECONDS" -ge "$2" ]; do read -r -t "$3" -u 9; done

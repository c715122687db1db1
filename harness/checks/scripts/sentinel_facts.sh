#!/bin/sh
# The sentinel probe before a sleep (after sentinel_start.sh): prints sentinel.pid and
# sentinel.count.
# Settings: STATE_DIR.
v=; read -r v < "$STATE_DIR/sentinel.pid"; echo "sentinel.pid=$v"
v=; read -r v < "$STATE_DIR/count"; echo "sentinel.count=$v"

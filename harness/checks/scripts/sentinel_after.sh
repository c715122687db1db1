#!/bin/sh
# The sentinel probe after a transition: prints sentinel.pid, sentinel.alive (yes or no),
# sentinel.count, then, once the count has moved on (at most 10 s), sentinel.count_later.
# Settings: STATE_DIR, BOUNDED_WAIT (the program's code).
pid=; read -r pid 2>/dev/null < "$STATE_DIR/sentinel.pid"
echo "sentinel.pid=$pid"
alive=no; [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=yes
echo "sentinel.alive=$alive"
c1=; read -r c1 2>/dev/null < "$STATE_DIR/count"
echo "sentinel.count=$c1"
# A sentinel that is gone never counts on: no wait for it. One program, bounded by its clock.
export STATE_DIR  # read by the bounded wait's test
[ $alive = yes ] && bash -c "$BOUNDED_WAIT" "$c1" "$STATE_DIR/tick" 10 0.05 \
  '! { read -r c < "$STATE_DIR/count" && [ "$c" = "$0" ]; }'
v=; read -r v 2>/dev/null < "$STATE_DIR/count"; echo "sentinel.count_later=$v"

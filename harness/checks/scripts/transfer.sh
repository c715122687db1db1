#!/bin/sh
# The transfer both ways (live_probes.transfer_both_ways), one ssh command: keeps what arrives
# on its input in STATE_DIR/transfer.bin, prints its checksum line (sha256sum's), then sends it
# back as it is, and leaves TOKEN in STATE_DIR/transferred for the closing look. Exits with
# the status of the sending back.
# Settings: STATE_DIR, TOKEN.
# No base64 or data of the guest's own: a TCG guest would make, hash and encode a MiB, tenths
# of a second each. After a fresh boot the state folder is made by the facts script, which runs
# beside this: it must not depend on winning that race.
[ -d "$STATE_DIR" ] || mkdir -p "$STATE_DIR"
tee "$STATE_DIR/transfer.bin" | sha256sum && cat "$STATE_DIR/transfer.bin"
s=$?; echo "$TOKEN" > "$STATE_DIR/transferred"; exit $s

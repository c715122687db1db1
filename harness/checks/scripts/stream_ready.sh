#!/bin/sh
# Makes the stream's data once per boot: STREAM_BYTES of random data in STATE_DIR/stream.bin
# and its checksum in stream.sha. Runs before each stream and when the ready checkpoint is
# warmed up (which therefore holds them already). Prints nothing.
# Settings: STATE_DIR, STREAM_BYTES.
mkdir -p "$STATE_DIR"
if [ ! -s "$STATE_DIR/stream.sha" ]; then
  head -c "$STREAM_BYTES" /dev/urandom > "$STATE_DIR/stream.bin"
  sha256sum < "$STATE_DIR/stream.bin" | cut -d' ' -f1 > "$STATE_DIR/stream.sha"
fi

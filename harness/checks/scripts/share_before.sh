#!/bin/sh
# The share probe before a sleep: mounts the host folder shared by tag SHARE_TAG (file system
# SHARE_FS, options SHARE_OPTIONS) on SHARE_MNT if it is not mounted yet, and writes a file
# through it with a fresh token, synced. Prints share.fs, share.mounted (1 or the mount's
# words) and share.before_token once the file is written.
# Settings: SHARE_TAG, SHARE_FS, SHARE_OPTIONS, SHARE_MNT, SHARE_IO_S (the bound of one step).
echo "share.fs=$SHARE_FS"
mounted=1
if ! grep -q " $SHARE_MNT " /proc/mounts; then
  mkdir -p "$SHARE_MNT"
  if ! out=$(timeout -s KILL "$SHARE_IO_S" mount -t "$SHARE_FS" -o "$SHARE_OPTIONS" \
      "$SHARE_TAG" "$SHARE_MNT" 2>&1); then
    mounted="${out:-mount gave no answer within ${SHARE_IO_S}s}"
  fi
fi
echo "share.mounted=$mounted"
read -r token < /proc/sys/kernel/random/uuid
# shellcheck disable=SC2016  # $1 and $2 are the inner shell's arguments
if [ "$mounted" = 1 ] && timeout -s KILL "$SHARE_IO_S" \
    sh -c 'echo "$1" > "$2/before" && sync "$2/before"' sh "$token" "$SHARE_MNT"; then
  echo "share.before_token=$token"
fi

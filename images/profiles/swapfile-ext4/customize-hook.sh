#!/bin/sh
# Profile swapfile-ext4, after the recipe's customize hook: swap is the file /swapfile on the
# root (the build makes it in the packed file system); the swap disk /dev/vdb is not used.
set -eu
root="$1"
cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 defaults 0 1
/swapfile none swap sw 0 0
FSTAB

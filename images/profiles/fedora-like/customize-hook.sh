#!/bin/sh
# Profile fedora-like, after the recipe's customize hook. /etc/fstab is written later in the
# build, once the btrfs file system's UUID is known (guest_profiles.FEDORA_LIKE).
set -eu
root="$1"
# Fedora's zram default (zram-generator-defaults since Fedora 34, "Scale ZRAM to full memory
# size"): one device as large as RAM, at most 8 GiB; zram-generator's own swap priority (100)
# puts it before the swapfile (the kernel's default, negative).
mkdir -p "$root/etc/systemd"
cat > "$root/etc/systemd/zram-generator.conf" <<'CONF'
[zram0]
zram-size = min(ram, 8192)
CONF

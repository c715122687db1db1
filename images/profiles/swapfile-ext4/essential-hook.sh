#!/bin/sh
# Profile swapfile-ext4, after the recipe's essential hook: the initramfs looks for the image
# on the root disk (its offset comes from the kernel command line, which overrides this).
set -eu
root="$1"
sed -i 's|^RESUME=.*|RESUME=/dev/vda|' "$root/etc/initramfs-tools/conf.d/harness.conf"

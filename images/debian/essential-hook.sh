#!/bin/sh
# mmdebstrap --essential-hook: runs before the kernel and initramfs-tools are installed, so that
# the first initramfs build already sees this configuration. $1 is the root directory.
set -eu
root="$1"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
# MODULES=dep cannot work inside a chroot (it inspects the build host's devices).
cat > "$root/etc/initramfs-tools/conf.d/harness.conf" <<'CONF'
MODULES=list
COMPRESS=zstd
RESUME=/dev/vdb
CONF
cat > "$root/etc/initramfs-tools/hooks/harness-virtio" <<'HOOK'
#!/bin/sh
case "$1" in prereqs) exit 0;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk ext4
HOOK
chmod 0755 "$root/etc/initramfs-tools/hooks/harness-virtio"

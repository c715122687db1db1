#!/bin/sh
# Profile fedora-like, after the recipe's essential hook and before the kernel and dracut are
# installed, so that the first initrd dracut builds already follows this.
set -eu
root="$1"
mkdir -p "$root/etc/dracut.conf.d"
# Fedora builds a host-only initrd on the installed system; this build runs in a chroot,
# where host-only would describe the build host, so the initrd is generic but limited to
# what this guest boots with: virtio disks, a btrfs root, systemd in the initrd with dracut's
# resume module (systemd-hibernate-resume, which reads resume= and resume_offset=).
cat > "$root/etc/dracut.conf.d/90-harness.conf" <<'CONF'
hostonly="no"
compress="zstd"
dracutmodules+=" systemd systemd-initrd dracut-systemd base fs-lib rootfs-block kernel-modules udev-rules btrfs resume "
drivers+=" virtio_pci virtio_blk btrfs "
CONF

#!/bin/sh
# mmdebstrap --customize-hook for the cloud-style image: what a distribution's cloud image has
# (DHCP, sshd, cloud-init with the NoCloud datasource), nothing of the harness's.
set -eu
root="$1"
cat > "$root/etc/fstab" <<'FSTAB'
LABEL=root / ext4 defaults 0 1
FSTAB
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/50-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
NET
chroot "$root" systemctl enable systemd-networkd.service
for unit in systemd-networkd-wait-online.service e2scrub_reap.service \
            apt-daily.timer apt-daily-upgrade.timer fstrim.timer; do
    chroot "$root" systemctl mask "$unit"
done
# No cloud metadata service to wait for: a seed disk (NoCloud), or nothing.
echo 'datasource_list: [ NoCloud, None ]' > "$root/etc/cloud/cloud.cfg.d/90-datasources.cfg"
# Like a distribution's cloud image, the initramfs knows no resume device (the shared essential
# hook gave it the built-in guest's): resume= comes from the kernel command line, which the
# harness's seed sets through the boot loader.
sed -i 's/^RESUME=.*/RESUME=none/' "$root/etc/initramfs-tools/conf.d/harness.conf"
chroot "$root" update-initramfs -u -k all

#!/bin/sh
# mmdebstrap --customize-hook: final configuration of the guest root. $1 is the root directory.
set -eu
root="$1"
echo guest > "$root/etc/hostname"
printf '127.0.1.1 guest\n' >> "$root/etc/hosts"
# No x-systemd.device-timeout on swap: under TCG it expires and hibernation then fails.
cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 defaults 0 1
/dev/vdb none swap sw,nofail 0 0
FSTAB
mkdir -p "$root/etc/systemd/network"
cat > "$root/etc/systemd/network/50-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
NET
chroot "$root" systemctl enable systemd-networkd.service
# Boot jobs a sleeping and waking test guest has no use for. Under TCG every one is a
# program or a mount competing for the guest's two vCPUs, and together they cost about 1 s of
# every cold boot, to the agent and to ssh alike (medians 15.5 -> 14.5 s and 17.0 -> 15.9 s,
# 3 boots each way, alternating): the kernel's debug, tracing, config and
# FUSE file systems (mount debugfs by hand if you need it), huge pages and POSIX message
# queues, preloading modules nothing here uses (this image has no DRM or loop users),
# pstore, network units generated from the kernel command line, the static device node
# list, and a login prompt on the VGA console (the serial console keeps its own).
for unit in systemd-networkd-wait-online.service e2scrub_reap.service \
            apt-daily.timer apt-daily-upgrade.timer fstrim.timer \
            sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
            sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount \
            modprobe@configfs.service modprobe@dm_mod.service modprobe@drm.service \
            modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service \
            systemd-pstore.service systemd-network-generator.service \
            kmod-static-nodes.service getty@tty1.service; do
    chroot "$root" systemctl mask "$unit"
done
# Key-only root login; the harness installs a per-run key through the guest agent. No PAM
# session and no lastlog: under TCG they cost 0.3-0.4 s of every new connection's first
# command (pam_motd runs update-motd.d), and every restore and S4 resume opens one.
mkdir -p "$root/etc/ssh/sshd_config.d"
cat > "$root/etc/ssh/sshd_config.d/harness.conf" <<'SSHD'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
UsePAM no
PrintLastLog no
SSHD
install -d -m 0700 "$root/root/.ssh"

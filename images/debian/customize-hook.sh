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

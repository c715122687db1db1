#!/bin/sh
# Profile luks-swap, after the recipe's customize hook: swap is a LUKS2 partition of the root
# disk (partition 2, made by the build after this hook), unlocked in the initramfs by a key
# file the initramfs carries, and the image resumed from /dev/mapper/cryptswap.
set -eu
root="$1"
install -d -m 0700 "$root/etc/cryptsetup-keys.d"
head -c 64 /dev/urandom > "$root/etc/cryptsetup-keys.d/cryptswap.key"
chmod 0400 "$root/etc/cryptsetup-keys.d/cryptswap.key"
# initramfs: set up in the initramfs whatever the build host's devices say (cryptroot's hook
# cannot see this guest's devices from a chroot).
echo 'cryptswap PARTLABEL=cryptswap /etc/cryptsetup-keys.d/cryptswap.key luks,initramfs' \
    > "$root/etc/crypttab"
cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda1 / ext4 defaults 0 1
/dev/mapper/cryptswap none swap sw 0 0
FSTAB
# cryptsetup-initramfs copies key files that match KEYFILE_PATTERN into the initramfs, which
# must then be readable by root alone (UMASK).
mkdir -p "$root/etc/cryptsetup-initramfs"
echo 'KEYFILE_PATTERN="/etc/cryptsetup-keys.d/*.key"' >> "$root/etc/cryptsetup-initramfs/conf-hook"
conf="$root/etc/initramfs-tools/conf.d/harness.conf"
sed -i 's|^RESUME=.*|RESUME=/dev/mapper/cryptswap|' "$conf"
echo 'UMASK=0077' >> "$conf"
# MODULES=list: dm-crypt and the cipher's modules by name (a TCG CPU has no AES-NI).
cat > "$root/etc/initramfs-tools/hooks/harness-cryptswap" <<'HOOK'
#!/bin/sh
case "$1" in prereqs) exit 0;; esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules dm_crypt xts aes_generic aesni_intel
HOOK
chmod 0755 "$root/etc/initramfs-tools/hooks/harness-cryptswap"
chroot "$root" update-initramfs -u -k all

#!/bin/sh
# Run by cloud-init (the harness's NoCloud seed) in a cloud guest: put resume=SWAP on the
# kernel command line through whichever boot loader the image has, so that its initramfs
# looks for a hibernation image at the next boot. Says what it did, for the harness, in
# $ROOT/var/lib/s3s4/resume-method: "cmdline" (already there), "grubby", "update-grub",
# "grub2-mkconfig", "systemd-boot", or "none: why". The harness reboots the guest once when
# the method is not "cmdline". ROOT is for tests only.
set -u
swap="$1"
root="${S3S4_ROOT:-}"
arg="resume=$swap"
mkdir -p "$root/var/lib/s3s4"
said() { echo "$1" > "$root/var/lib/s3s4/resume-method"; exit 0; }

read -r cmdline < "$root/proc/cmdline"
case " $cmdline " in *" resume="*) said cmdline;; esac

# Fedora, CentOS Stream (BLS entries).
if command -v grubby >/dev/null 2>&1; then
    grubby --update-kernel=ALL --args="$arg" && said grubby
fi

# Debian, Ubuntu: a drop-in read after /etc/default/grub and the image's own drop-ins.
if [ -e "$root/etc/default/grub" ] || [ -d "$root/etc/default/grub.d" ]; then
    mkdir -p "$root/etc/default/grub.d"
    echo "GRUB_CMDLINE_LINUX_DEFAULT=\"\$GRUB_CMDLINE_LINUX_DEFAULT $arg\"" \
        > "$root/etc/default/grub.d/99-s3s4-resume.cfg"
    if command -v update-grub >/dev/null 2>&1; then
        update-grub && said update-grub
    elif command -v grub2-mkconfig >/dev/null 2>&1; then
        grub2-mkconfig -o "$root/boot/grub2/grub.cfg" && said grub2-mkconfig
    fi
fi

# systemd-boot: the entries on the EFI system partition, mounted here for the edit.
esp=$(lsblk -rno PATH,PARTTYPE 2>/dev/null |
      awk 'tolower($2) == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {print $1; exit}')
if [ -n "$esp" ] && [ -z "$root" ]; then
    mnt=$(mktemp -d)
    if mount "$esp" "$mnt"; then
        edited=0
        for entry in "$mnt"/loader/entries/*.conf; do
            [ -f "$entry" ] || continue
            grep -q "^options.* resume=" "$entry" || sed -i "s|^options .*|& $arg|" "$entry"
            edited=$((edited + 1))
        done
        umount "$mnt"
        rmdir "$mnt"
        [ "$edited" -gt 0 ] && said systemd-boot
    fi
fi

said "none: no grubby, update-grub, grub2-mkconfig or systemd-boot entries found"

#!/bin/sh
# Run by cloud-init (the harness's NoCloud seed) in a cloud guest: put the resume arguments
# (resume=UUID=... resume_offset=N, from prepare_swapfile.sh) on the kernel command line
# through whichever boot loader the image has, so that its initramfs looks for a hibernation
# image at the next boot. Says what it did, for the harness, in $ROOT/var/lib/s3s4/: the
# arguments in resume-args, and in resume-method "cmdline" (already there), "grubby",
# "update-grub", "grub2-mkconfig", "systemd-boot", or "none: why". The harness reboots the
# guest once when the method is not "cmdline". ROOT is for tests only.
# Usage: set_resume.sh ARGUMENT...
set -u
root="${S3S4_ROOT:-}"
args="$*"
mkdir -p "$root/var/lib/s3s4"
echo "$args" > "$root/var/lib/s3s4/resume-args"
said() { echo "$1" > "$root/var/lib/s3s4/resume-method"; exit 0; }

read -r cmdline < "$root/proc/cmdline"
missing=""
for arg in $args; do
    case " $cmdline " in *" $arg "*) ;; *) missing="$missing $arg" ;; esac
done
[ -z "$missing" ] && said cmdline

# Fedora, CentOS Stream (BLS entries).
if command -v grubby >/dev/null 2>&1; then
    grubby --update-kernel=ALL --args="$args" && said grubby
fi

# Debian, Ubuntu: a drop-in read after /etc/default/grub and the image's own drop-ins.
if [ -e "$root/etc/default/grub" ] || [ -d "$root/etc/default/grub.d" ]; then
    mkdir -p "$root/etc/default/grub.d"
    echo "GRUB_CMDLINE_LINUX_DEFAULT=\"\$GRUB_CMDLINE_LINUX_DEFAULT $args\"" \
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
        release=$(uname -r)
        for entry in "$mnt"/loader/entries/*.conf; do
            [ -f "$entry" ] || continue
            # Earlier resume arguments go: the kernel would take the last of each.
            sed -i -e '/^options/ s/ resume\(_offset\)\{0,1\}=[^ ]*//g' \
                -e "s|^options .*|& $args|" "$entry"
            edited=$((edited + 1))
            # The initramfs regenerated under /boot is what the entry must boot, where the
            # entry boots the running kernel: copied over the ESP's.
            linux=$(sed -n 's/^linux  *//p' "$entry" | head -n 1)
            initrd=$(sed -n 's/^initrd  *//p' "$entry" | head -n 1)
            if [ -n "$initrd" ] && [ -f "/boot/initrd.img-$release" ] &&
               cmp -s "$mnt$linux" "/boot/vmlinuz-$release"; then
                cp "/boot/initrd.img-$release" "$mnt$initrd"
            fi
        done
        umount "$mnt"
        rmdir "$mnt"
        [ "$edited" -gt 0 ] && said systemd-boot
    fi
fi

said "none: no grubby, update-grub, grub2-mkconfig or systemd-boot entries found"

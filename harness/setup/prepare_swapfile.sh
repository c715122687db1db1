#!/bin/sh
# Run by cloud-init (the harness's NoCloud seed) in a cloud guest: hibernation to a swapfile
# on the root file system, prepared as the harness's guest profiles have it and as the
# distributions document it, then the boot loader's command line through SET_RESUME:
#  - btrfs (Fedora): a /swap subvolume and `btrfs filesystem mkswapfile` (no copy-on-write, no
#    compression); resume_offset from `btrfs inspect-internal map-swapfile -r`, in pages;
#  - ext4, xfs (Debian, Ubuntu, CentOS Stream): fallocate and mkswap; resume_offset from the
#    first extent of `filefrag -v`, in the file system's blocks, converted to pages;
#  - as large as RAM (a hibernation image fits in any case), less where the file system has
#    less room, keeping 256 MiB of it free;
#  - the initramfs regenerated where it cannot resume: dracut with its resume module (where
#    `lsinitrd -m` lists none), or update-initramfs (where `lsinitramfs` shows no resume
#    script); RESUME= set for initramfs-tools' later builds in any case;
#  - resume=UUID=<the file system's> resume_offset=<pages> handed to SET_RESUME.
# Says what it made in $ROOT/var/lib/s3s4/swapfile; a step that fails is named in
# resume-method ("none: why"), which the harness reports. ROOT is for tests only, and PATH
# then holds stand-ins for the tools.
# Usage: prepare_swapfile.sh SET_RESUME
set -u
set_resume="$1"
root="${S3S4_ROOT:-}"
state="$root/var/lib/s3s4"
mkdir -p "$state"
fail() {
    echo "none: swapfile: $1" > "$state/resume-method"
    echo "s3s4 swapfile: $1" >&2
    exit 1
}

fs=$(findmnt -no FSTYPE /) || fail "findmnt cannot tell the root file system"
case "$fs" in
    btrfs) file=/swap/swapfile ;;
    ext4|xfs) file=/swapfile ;;
    *) fail "a swapfile on $fs is not prepared (btrfs, ext4 or xfs)" ;;
esac
page=$(getconf PAGESIZE)
mem_mib=$(awk '/^MemTotal:/ {print int($2 / 1024)}' "$root/proc/meminfo")
free_mib=$(df -Pm / | awk 'NR == 2 {print $4}')
size=$mem_mib
[ $((free_mib - 256)) -lt "$size" ] && size=$((free_mib - 256))
[ "$size" -ge 256 ] || fail "only $free_mib MiB free on /, too little for a swapfile"

if ! swapon --show=NAME --noheadings | grep -qx "$file"; then
    case "$fs" in
        btrfs)
            [ -d "$root/swap" ] || btrfs subvolume create "$root/swap" >/dev/null ||
                fail "btrfs subvolume create /swap"
            btrfs filesystem mkswapfile --size "${size}m" "$root$file" >/dev/null ||
                fail "btrfs filesystem mkswapfile --size ${size}m $file"
            ;;
        *)
            if ! { fallocate -l "${size}MiB" "$root$file" && chmod 600 "$root$file" &&
                   mkswap -L s3s4-swap "$root$file" >/dev/null; }; then
                fail "fallocate and mkswap of $file on $fs"
            fi
            ;;
    esac
    # Under SELinux (Fedora, CentOS Stream) a swapfile is one labelled swapfile_t.
    if [ -e "$root/sys/fs/selinux/enforce" ] && command -v chcon >/dev/null 2>&1; then
        chcon -t swapfile_t "$root$file" || fail "chcon -t swapfile_t $file"
    fi
    swapon "$root$file" || fail "swapon $file"
    grep -q "^$file " "$root/etc/fstab" 2>/dev/null ||
        echo "$file none swap sw,nofail 0 0" >> "$root/etc/fstab"
fi

case "$fs" in
    btrfs)
        offset=$(btrfs inspect-internal map-swapfile -r "$root$file") ||
            fail "btrfs inspect-internal map-swapfile -r $file"
        ;;
    *)
        block=$(stat -f -c %S "$root$file")
        first=$(filefrag -v "$root$file" |
                sed -n 's/^ *0: *0\.\. *[0-9]*: *\([0-9]*\)\.\..*/\1/p' | head -n 1)
        [ -n "$first" ] || fail "filefrag -v $file shows no first extent"
        offset=$((first * block / page))
        ;;
esac
uuid=$(findmnt -no UUID -T "$root$file")
[ -n "$uuid" ] || fail "findmnt gives no UUID for the file system of $file"

# An initramfs that can resume already is kept: the kernel command line names the image
# (regenerating one costs a TCG guest a minute).
release=$(uname -r)
if command -v dracut >/dev/null 2>&1; then
    if lsinitrd -m "$root/boot/initramfs-$release.img" 2>/dev/null | grep -qx resume; then
        initramfs=kept:dracut
    else
        mkdir -p "$root/etc/dracut.conf.d"
        echo 'add_dracutmodules+=" resume "' > "$root/etc/dracut.conf.d/90-s3s4-resume.conf"
        dracut -f --regenerate-all || fail "dracut -f --regenerate-all"
        initramfs=dracut
    fi
elif command -v update-initramfs >/dev/null 2>&1; then
    # Read after the image's own conf.d files (one may say RESUME=none): the last one wins.
    mkdir -p "$root/etc/initramfs-tools/conf.d"
    echo "RESUME=UUID=$uuid" > "$root/etc/initramfs-tools/conf.d/zz-s3s4-resume"
    if lsinitramfs "$root/boot/initrd.img-$release" 2>/dev/null |
       grep -q 'scripts/local-premount/resume$'; then
        initramfs=kept:initramfs-tools
    else
        update-initramfs -u || fail "update-initramfs -u"
        initramfs=update-initramfs
    fi
else
    initramfs=none
fi

echo "path=$file fs=$fs size_mib=$size resume_offset=$offset initramfs=$initramfs" \
    > "$state/swapfile"
exec "$set_resume" "resume=UUID=$uuid" "resume_offset=$offset"

#!/bin/sh
# Finds the guest's data (scratch) disk, whatever its bus: the first of /sys/block's NVMe
# namespaces, SCSI disks (AHCI, virtio-scsi) and virtio disks that is not the root (vda) or
# the swap disk (vdb), which stay on virtio-blk, nor partitioned (the secure-boot ESP can be
# the first SATA disk; the scratch disk has no partitions). Sets data_disk (nvme0n1, sda,
# vdc ...) and data_disk_driver: the first driver above the disk in the device tree other
# than sd's (the disk driver of every SCSI disk), that is the disk's controller (nvme, ahci,
# virtio_scsi, virtio_blk). Links are resolved with `cd -P` (a builtin): under TCG each
# program started costs the guest tens of ms. Prints nothing.
# shellcheck disable=SC2034  # data_disk_driver is read by the fragments that follow this one
data_disk=
for d in /sys/block/nvme*n1 /sys/block/sd? /sys/block/vd?; do
  case ${d##*/} in 'nvme*n1' | 'sd?' | 'vd?' | vda | vdb) continue;; esac
  if [ -e "$d/${d##*/}1" ] || [ -e "$d/${d##*/}p1" ]; then continue; fi
  data_disk=${d##*/}; break
done
data_disk_dev=/dev/$data_disk
data_disk_driver=; p=
cd -P "/sys/block/$data_disk/device" 2>/dev/null && p=$PWD
while [ -n "$p" ]; do
  if cd -P "$p/driver" 2>/dev/null; then
    case ${PWD##*/} in sd) ;; *) data_disk_driver=${PWD##*/}; break;; esac
  fi
  p=${p%/*}
done
cd /

#!/bin/sh
# Where the disk probe's file (PROBE_FILE) lies on the root disk, for the fault that
# overwrites it from the host (faults.root_disk_data_overwritten), run after the wake. Prints
# start=N, its partition's start in 512-byte sectors (0 for a file system on the whole disk),
# then filefrag's extents of the file, in 4 KiB blocks of the file system's device.
# Settings: PROBE_FILE.
src=$(findmnt -nvo SOURCE --target "$PROBE_FILE")
start=0; read -r start 2>/dev/null < "/sys/class/block/${src##*/}/start"
echo "start=$start"; filefrag -v -b4096 "$PROBE_FILE"

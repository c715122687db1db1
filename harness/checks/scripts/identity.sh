#!/bin/sh
# The identity probe, in every capture before and after a transition (after
# pattern_ready.sh): counts the capture in STATE_DIR/round (see slice_sum.sh), then prints
# the guest.* facts that tell one boot from another and what the guest offers (boot_id,
# uptime, kernel, power states, swaps, suspends counted, taint), the root disk's requests
# (blk.vda_requests), and guest.ram_marker: random, made once per boot in tmpfs, so kept
# across a sleep and gone after a reboot.
# Settings: STATE_DIR.
# Facts are read with shell builtins where one will do: under TCG every program started in the
# guest costs tens of ms, and the script runs twice per cycle.
r=0; read -r r 2>/dev/null < "$STATE_DIR/round"; echo $((r + 1)) > "$STATE_DIR/round"
# fact KEY= FILE prints KEY= and the first line of FILE (nothing after it when unreadable).
fact() { v=; read -r v 2>/dev/null < "$2"; echo "$1$v"; }
fact guest.boot_id= /proc/sys/kernel/random/boot_id
read -r up _ < /proc/uptime; echo "guest.uptime=$up"
fact guest.kernel= /proc/sys/kernel/osrelease
fact guest.cmdline= /proc/cmdline
fact guest.bios_version= /sys/class/dmi/id/bios_version
fact guest.power_state= /sys/power/state
fact guest.mem_sleep= /sys/power/mem_sleep
fact guest.power_disk= /sys/power/disk
swaps=; { read -r _; while read -r name _; do swaps="$swaps$name "; done; } < /proc/swaps
echo "guest.swaps=$swaps"
fact guest.suspend_success= /sys/power/suspend_stats/success
fact guest.taint= /proc/sys/kernel/tainted
read -r r _ _ _ w _ < /sys/block/vda/stat; echo "blk.vda_requests=$((r + w))"
[ -s "$STATE_DIR/marker" ] || head -c8 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$STATE_DIR/marker"
fact guest.ram_marker= "$STATE_DIR/marker"

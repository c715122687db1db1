#!/bin/sh
# A systemd-sleep hook, written into the guest by stall_on_wake.sh: after the resume it starts
# the CPU stall as a unit of its own (what a hook leaves behind dies with
# systemd-suspend.service), and removes itself. Prints nothing.
[ "$1" = post ] || exit 0
rm -f "$0"
systemd-run --no-block --collect --unit s3s4-cpu-stall sh /usr/local/sbin/s3s4-cpu-stall

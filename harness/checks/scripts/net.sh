#!/bin/sh
# The network probe: finds the first NIC bound to virtio_net (not the default route's: that
# goes away with the link) and prints net.iface, net.driver (of the last NIC looked at, when
# none is virtio_net's), net.operstate, net.carrier and net.device (its virtio device, whose
# interrupts the host counts). Runs over ssh with the other facts before a sleep, and through
# the agent after a wake when the facts before named no NIC (live_probes.net_facts).
# Links are resolved with `cd -P` (a builtin), not readlink: under TCG each program started
# costs the guest tens of ms.
if=; drv=; dev=
for d in /sys/class/net/*; do
  cd -P "$d/device/driver" 2>/dev/null || continue
  drv=${PWD##*/}
  case "$drv" in virtio_net) if=${d##*/}; cd -P "$d/device" && dev=${PWD##*/}; break;; esac
done
cd /
echo "net.iface=$if"
echo "net.driver=$drv"
v=; read -r v 2>/dev/null < "/sys/class/net/$if/operstate"; echo "net.operstate=$v"
v=; read -r v 2>/dev/null < "/sys/class/net/$if/carrier"; echo "net.carrier=$v"
echo "net.device=$dev"

#!/bin/sh
# The network probe: finds the guest's NIC, the first network interface bound to a driver
# (not the default route's: that goes away with the link), whatever its model, and prints
# net.iface, net.driver (virtio_net, e1000e ...), net.operstate, net.carrier and net.device
# (what its interrupts are named after in /proc/interrupts, which the host counts: the virtio
# device for virtio_net, else the interface). Runs over ssh with the other facts before a
# sleep, and through the agent after a wake when the facts before named no NIC
# (live_probes.net_facts).
# Links are resolved with `cd -P` (a builtin), not readlink: under TCG each program started
# costs the guest tens of ms.
if=; drv=; dev=
for d in /sys/class/net/*; do
  cd -P "$d/device/driver" 2>/dev/null || continue
  drv=${PWD##*/}; if=${d##*/}; dev=$if
  case "$drv" in virtio_net) cd -P "$d/device" && dev=${PWD##*/};; esac
  break
done
cd /
echo "net.iface=$if"
echo "net.driver=$drv"
v=; read -r v 2>/dev/null < "/sys/class/net/$if/operstate"; echo "net.operstate=$v"
v=; read -r v 2>/dev/null < "/sys/class/net/$if/carrier"; echo "net.carrier=$v"
echo "net.device=$dev"

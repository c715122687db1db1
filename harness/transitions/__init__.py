"""The sleep paths as data: how a sleep is requested, how its entry is proven, how the guest is
woken (``parts``), the named paths built from them (``catalogue``), the host-side paths a
management layer offers (``host``: dompmsuspend, save, managedsave, snapshot) and the
libvirt-guests service (``guests_service``)."""

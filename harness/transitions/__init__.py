"""The sleep paths as data. ``parts`` says what a transition is made of (``Needs``,
``Transition``, ``Rewake``, the kernel's records), with how a sleep is requested
(``requests``), how its entry is proven (``entries``), how the guest is woken (``wakes``) and
where a cycle began (``marks``); ``catalogue`` holds the named in-guest paths built from them,
``host`` the host-side paths a management layer offers (dompmsuspend, save, managedsave,
snapshot) and ``guests_service`` the libvirt-guests service, which holds ``host_lock`` while
it acts on every guest of the host."""

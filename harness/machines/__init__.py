"""The running virtual machine. ``protocol`` says what the transitions, checks and session may
ask of one; ``base`` holds what both backends share (ssh, readiness, hang evidence); ``config``
what QEMU runs; ``checkpoint`` the ready-guest snapshots; ``events`` the platform's event log.
The backends live in ``qemu`` (QEMU driven directly over QMP) and ``libvirt`` (a libvirt
domain); neither imports the other, and nothing outside this package imports either but the
composition root (``harness.session``) and the tools."""

"""What a run needs before a guest boots: the guest image (``image``, its Debian suite
``debian_suites``, ``kernel``, ``cloud``, ``cloud_providers``, ``downloads``), the QEMU and
firmware under test (``components``), the accelerator (``accel``), the private run directory
(``runtime``) and the watchdog that cleans up after a harness that was killed (``watchdog``)."""

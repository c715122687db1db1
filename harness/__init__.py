"""s3s4-harness: validates guest suspend-to-RAM (ACPI S3) and hibernate (ACPI S4) in QEMU/KVM.

The packages are layers; each imports only those below it (held by import-linter contracts in
pyproject.toml, run as a test):

- ``cli``, ``plugin``, ``tools``: entry points (``python -m harness``, the pytest plugin, bench,
  bisect, endurance, matrix runs).
- ``session``, ``ready_checkpoints``: the composition root that builds everything for a run.
- ``cycle``: one sleep-and-wake cycle: capture facts, request, wait, wake, capture, judge.
- ``transitions``, ``checks``: the sleep paths as data, and the facts and verdicts about a guest.
- ``machines``: the running virtual machine behind one protocol; ``machines.qemu`` and
  ``machines.libvirt`` are its two backends and never import each other.
- ``guest``: channels into the guest OS (ssh, the agent's commands, the serial console).
- ``setup``, ``matrix``, ``results``: images and components, the combinations a run covers, and
  what a run writes.
- ``errors``, ``timeouts``, ``process``, ``aio``, ``ports``, ``paths``: leaves any layer may use.
"""

"""The combinations a run covers: one cell (guest kernel, QEMU, firmware, machine type, accelerator;
``cell``) and a matrix file of them (``spec``)."""

"""The combinations a run covers: one cell (guest kernel, QEMU, firmware, machine type, accelerator;
``cell``), a matrix file of them (``spec``) and a cell's device profile (``devices``)."""

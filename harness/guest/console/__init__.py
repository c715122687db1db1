"""The guest's serial console: the socket QEMU's serial chardev connects to (``server``), the
log that waits on lines (``log``) and what a console says about a hung guest (``diagnosis``)."""

"""The libvirt backend: the same guests and checks as the direct QEMU backend, driven through a
real libvirt daemon (libvirt-python), plus the host-side paths only libvirt has."""

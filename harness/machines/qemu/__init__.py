"""The direct QEMU backend: command line, process, QMP monitor, guest agent, machine."""

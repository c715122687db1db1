"""Channels into a running guest OS, whichever backend runs it: ssh with the run's key
(``ssh``), scripts and files through qemu-guest-agent (``agent_exec``, ``agent_files``) and the
serial console (``console``)."""

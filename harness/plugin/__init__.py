"""The pytest plugin (entry point ``harness.plugin``): command-line options (``options``), and
the hooks and fixtures test cases use (``hooks``: ``guest``, ``libvirt_guest``,
``guest_factory``, ``power_cycle``, ``group_cycle``, ``harness_session``, the ``cell``
parameter) with ``expect_pass`` and the ``PowerCycle``/``GroupCycle`` types."""

from harness.plugin.hooks import *  # noqa: F403  (pytest finds the hooks and fixtures here)
from harness.plugin.hooks import __all__ as __all__

"""One cycle of a transition on one machine (``run``): facts before, the request, the proven
entry, the wake, facts after, the verdict; faults injected into it (``faults``) and the
pm_test stage localisation that follows a failure (``localise``)."""

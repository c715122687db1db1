"""Facts about a guest and the verdicts drawn from them. ``probes`` builds the guest-side
scripts (``scripts/*.sh``) and parses what they print; ``live_probes`` takes the facts that
must be read while the cycle runs; ``judges`` turns evidence into checks; ``verdict`` holds the
verdict vocabulary. Nothing here knows which backend runs the guest."""

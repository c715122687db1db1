"""What a run writes and how runs are read back: ``run_report`` (results.json), ``merge``
(runs and shards into one matrix, two matrices compared), ``html`` (the report page), ``tmt``
(tmt custom results) and ``known_issues`` (understood failures, turned into xfail)."""

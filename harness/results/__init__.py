"""What a run writes and how runs are read back: ``run_report`` (results.json), ``merge``
(runs and shards into one matrix, two matrices compared), ``run_page`` (a run's report.html,
drawing each cycle with ``timeline`` and ``timeline_svg``), ``html`` (the matrix page), ``tmt``
(tmt custom results) and ``known_issues`` (understood failures, turned into xfail)."""

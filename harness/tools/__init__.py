"""Commands built on the harness: the benchmark (``bench``), ``git bisect run`` support
(``bisect``), endurance runs (``endurance``) and matrix runs (``matrix_run``)."""

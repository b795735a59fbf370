"""Benchmarks: ``speed`` (``cnlrn bench``: time and memory against the FLOP floor) and ``quality``
(``cnlrn bench-quality``: CNLRN, its ablations and the baselines trained on an equal budget)."""

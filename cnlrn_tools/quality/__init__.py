"""``cnlrn bench-quality``: CNLRN, its ablations and the paper's baselines trained on an equal budget."""

"""``cnlrn bench``: speed and memory of CNLRN against the hardware's FLOP floor."""

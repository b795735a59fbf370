"""``cnlrn bench``: time and memory of CNLRN against the hardware's FLOP floor."""

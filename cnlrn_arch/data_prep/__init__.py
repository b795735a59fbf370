"""Data preparation: the REDS and DVD recipes and the demo data set, each output built completely or not at all."""

"""Scores measured as the paper does (:mod:`.scores`) and the tables and pictures the demo and benchmarks write."""

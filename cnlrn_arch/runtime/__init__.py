"""Runtime knobs: OpenMP's wait policy, the allocator, autocast/compile/TF32, self-ensemble, collective timeouts."""

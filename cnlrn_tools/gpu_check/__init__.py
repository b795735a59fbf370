"""``cnlrn gpu-check``: the one-command GPU acceptance check (:mod:`.gpu_check`), and its dry run on the CPU for CI."""

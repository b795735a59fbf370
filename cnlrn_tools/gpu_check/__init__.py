"""``cnlrn gpu-check``: the one-command GPU acceptance check (:mod:`.run`), and its dry run on the CPU for CI."""

"""Subcommands of the ``cnlrn`` command, one module each (see ``cnlrn_arch/cli.py``)."""

"""The console commands of CNLRN for BasicSR: ``cnlrn`` (one module per subcommand) and ``basicsr``.

Each module only parses its arguments and makes one call into the library,
``cnlrn_arch``; nothing in the library imports this package.
"""

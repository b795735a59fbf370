"""The bottom layer: user errors, optional imports, the project's names and files, atomic writes, locks, image types,
and what an input claims (option files, stored options, videos), checked before torch is imported."""

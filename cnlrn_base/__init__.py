"""The bottom layer: user errors, optional imports, the project's names and files, atomic writes, locks, image types."""

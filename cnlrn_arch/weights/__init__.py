"""Network weights: files (:mod:`.files`), the configuration they describe, loading into a network, export formats."""

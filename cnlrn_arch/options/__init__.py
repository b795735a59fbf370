"""Option files: read as plain data (:mod:`.option_file`), typed (:mod:`.schema`) and checked (:mod:`.check`)."""

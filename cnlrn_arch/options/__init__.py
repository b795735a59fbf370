"""Option files checked (:mod:`.check`): read as plain data by :mod:`cnlrn_base.option_file`, typed by
:mod:`cnlrn_base.option_schema`."""

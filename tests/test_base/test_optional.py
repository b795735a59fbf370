import sys

import pytest

from cnlrn_base.errors import UserError
from cnlrn_base.optional import import_optional


def test_installed_module_is_returned():
    assert import_optional('safetensors.torch', 'safetensors weights').__name__ == 'safetensors.torch'


def test_missing_module_names_package_and_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'av', None)  # a None entry makes `import av` raise ImportError
    with pytest.raises(UserError, match=r"video files need the 'av' package.*pip install av.*\.\[video\]"):
        import_optional('av', 'video files')

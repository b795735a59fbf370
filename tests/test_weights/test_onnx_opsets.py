"""Both ends of the supported opset range export (a check off by one refused the highest)."""

import onnx
import pytest

from cnlrn_arch.weights.onnx_file import MAX_OPSET, MIN_OPSET, export_onnx
from tests.helpers import tiny_net


@pytest.mark.parametrize('opset', [MIN_OPSET, MAX_OPSET])
def test_lowest_and_highest_supported_opsets_export(tmp_path, opset):
    export_onnx(tiny_net(), tmp_path / 'model.onnx', opset)
    model = onnx.load(str(tmp_path / 'model.onnx'))
    assert [o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')] == [opset]

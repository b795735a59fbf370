"""Optional dependencies (PyAV, safetensors, onnx, onnxruntime, gradio, spandrel), imported only where needed.

BasicSR workflows that use none of these features run without them installed.
"""

import importlib
from types import ModuleType

from cnlrn_base.errors import UserError

# module name -> (the pip package, the extra of this project that installs it)
PACKAGES = {
    'av': ('av', 'video'),
    'safetensors': ('safetensors', 'safetensors'),
    'onnx': ('onnx', 'onnx'),
    'onnxruntime': ('onnxruntime', 'onnx'),
    'gradio': ('gradio', 'web'),
    'spandrel': ('spandrel', 'spandrel'),
}


def import_optional(module: str, feature: str) -> ModuleType:
    """``import module`` (a key of PACKAGES, or one of its submodules), or one line saying what to install.

    Args:
        module (str): e.g. 'av' or 'safetensors.torch'.
        feature (str): what needs it, for the message, e.g. 'video files'.

    Raises:
        UserError: when the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package, extra = PACKAGES[module.split('.')[0]]
        raise UserError(
            f'{feature} need the {package!r} package, which is not installed: pip install {package} '
            f"(or pip install -e '.[{extra}]' in this project)"
        ) from None

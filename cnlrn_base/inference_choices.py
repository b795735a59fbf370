"""Which of ``cnlrn infer``'s choices go together, checked without torch.

Commands check them before anything is read (a video is decoded in full
before the network loads), and :class:`~cnlrn_arch.inference.settings.InferenceSettings`
checks them again for the library's callers.
"""

from __future__ import annotations

from cnlrn_base.errors import UserError
from cnlrn_base.inference_defaults import AUTOCAST_PRECISIONS

# the precisions each backend can autocast to; onnxruntime runs the exported graph in float32
BACKEND_PRECISIONS = {'torch': AUTOCAST_PRECISIONS, 'onnxruntime': ()}


def check_choices(
    tile: int | None,
    tile_pad: int | None,
    precision: str | None,
    channels_last: bool,
    compile_backend: str | None,
    backend: str,
) -> None:
    """Raise a UserError naming the options that do not go together.

    Args:
        tile (int | None): LR tile side; None runs each image whole.
        tile_pad (int | None): LR context around each tile; None: the default, a value needs ``tile``.
        precision (str | None): None (float32) or one of AUTOCAST_PRECISIONS.
        channels_last (bool): NHWC order asked for.
        compile_backend (str | None): torch.compile's backend asked for, or None.
        backend (str): what will run the network: one of BACKEND_PRECISIONS' keys.

    Raises:
        UserError: a tile padding without tiles, or PyTorch's options for onnxruntime.
    """
    if tile_pad is not None and tile is None:
        raise UserError('--tile-pad needs --tile')
    if backend != 'torch':
        torch_only = [f'--{precision}'] * (precision not in (None, *BACKEND_PRECISIONS[backend]))
        torch_only += ['--channels-last'] * channels_last + ['--compile'] * bool(compile_backend)
        if torch_only:
            raise UserError(f'{" ".join(torch_only)}: PyTorch options, not for --backend {backend} (float32)')

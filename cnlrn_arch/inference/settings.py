"""How a network runs on images: one :class:`InferenceSettings`, checked once where it is made.

``cnlrn infer``, the web page and the benchmarks build one and pass it to
every call that runs the network (:mod:`.upscale`, :mod:`.restore_video`,
:mod:`.restore_files`), instead of threading its parts one by one.
"""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from cnlrn_arch.runtime.speed import (
    AMP_DTYPES,
    Speed,
    autocast,
    check_autocast,
    compile_args,
    compiled,
    to_memory_format,
)
from cnlrn_base.errors import UserError
from cnlrn_base.inference_choices import check_choices
from cnlrn_base.inference_defaults import DEFAULT_TILE_PAD


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda' as a torch.device.

    Raises:
        UserError: for 'cuda' where CUDA is not available.
    """
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif name == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda: CUDA is not available here (no GPU visible, or torch built without CUDA)')
    return torch.device(name)


@dataclass(frozen=True)
class InferenceSettings:
    """Where and how a network runs on an image; :meth:`checked` makes one from a user's choices.

    Attributes:
        device (torch.device): where the network runs.
        tile (int | None): LR tile side (see :mod:`.tiling`); None runs each image whole.
        tile_pad (int): LR pixels of context around each tile; unused without ``tile``.
        self_ensemble (bool): average over the 8 flips/rotations (8 times slower).
        precision (str | None): None (float32) or a key of AMP_DTYPES to autocast to.
        channels_last (bool): the weights, and so the activations, in NHWC memory order on a GPU too
            (the CPU always runs NHWC: see :func:`~cnlrn_arch.runtime.speed.channels_last_on`).
        compile_backend (str | None): torch.compile's backend; None: not compiled.
    """

    device: torch.device = torch.device('cpu')
    tile: int | None = None
    tile_pad: int = DEFAULT_TILE_PAD
    self_ensemble: bool = False
    precision: str | None = None
    channels_last: bool = False
    compile_backend: str | None = None

    @classmethod
    def checked(
        cls,
        device: str = 'auto',
        tile: int | None = None,
        tile_pad: int | None = None,
        self_ensemble: bool = False,
        precision: str | None = None,
        channels_last: bool = False,
        compile_backend: str | None = None,
        backend: str = 'torch',
    ) -> InferenceSettings:
        """The settings of these choices, once they work together here; the fields' names are the attributes'.

        Args:
            device (str): 'auto', 'cpu' or 'cuda' (see :func:`resolve_device`).
            tile_pad (int | None): None: DEFAULT_TILE_PAD; a value needs ``tile``.
            backend (str): what will run the network, 'torch' or 'onnxruntime', which takes no
                autocast, channels-last or compile.
            tile, self_ensemble, precision, channels_last, compile_backend: as the attributes.

        Raises:
            UserError: one line naming the option: a tile padding without tiles, PyTorch's options
                for onnxruntime, a device that is not there, an autocast the device cannot do, or
                a torch.compile backend that does not exist.
        """
        check_choices(tile, tile_pad, precision, channels_last, compile_backend, backend)
        resolved = resolve_device(device)
        check_autocast(resolved.type, AMP_DTYPES.get(precision), f'--{precision}')
        compile_args({'backend': compile_backend} if compile_backend else None, '--compile')
        tile_pad = DEFAULT_TILE_PAD if tile_pad is None else tile_pad
        return cls(resolved, tile, tile_pad, self_ensemble, precision, channels_last, compile_backend)

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of :attr:`precision`; None for float32."""
        return AMP_DTYPES.get(self.precision)

    def autocast(self) -> AbstractContextManager:
        """Autocast to :attr:`precision` on :attr:`device`; a no-op context for float32."""
        return autocast(self.device, self.amp_dtype)

    @property
    def speed(self) -> Speed:
        """The channels-last and compile choices as the runtime's :class:`~cnlrn_arch.runtime.speed.Speed`."""
        return Speed(self.channels_last, {'backend': self.compile_backend} if self.compile_backend else None)

    def prepare(self, net: nn.Module) -> nn.Module:
        """``net`` in channels-last order (asked, or on the CPU) and compiled, as asked (else ``net`` itself)."""
        return compiled(to_memory_format(net, self.speed, self.device), self.speed)

    def stamp(self) -> dict:
        """The settings as JSON-able data, for records of what was computed with them."""
        return {**dataclasses.asdict(self), 'device': str(self.device)}


def autocast_works(device: torch.device, precision: str) -> bool:
    """Whether autocast to ``precision`` (a key of AMP_DTYPES) works on ``device``, as settings require it."""
    try:
        check_autocast(device.type, AMP_DTYPES[precision], precision)
    except UserError:
        return False
    return True

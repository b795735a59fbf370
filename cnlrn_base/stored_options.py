"""The network options (``network_g``) a weights file stores, read and checked without torch.

``cnlrn infer`` checks them against the option schema before it imports torch (whose import alone takes
most of a gigabyte), so options asking for a network of gigabytes are refused for a few megabytes; the
library checks them again before it builds anything (:mod:`cnlrn_arch.weights.loading`).

A ``.safetensors`` file keeps them as JSON in its header's metadata. A PyTorch file (a zip, as torch 1.6 and
later write them) keeps them in its pickle beside the tensors: that pickle is read here by an unpickler that
knows a state dict's few classes only, stands None for every tensor and never reads a tensor's bytes. A
file read neither way (another layout, anything else pickled, a header or pickle over
:data:`MAX_HEADER_BYTES`) has no options here: the library reads it and names what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from typing import Any

from cnlrn_base.errors import UserError, first_line
from cnlrn_base.option_file import load_option_file
from cnlrn_base.option_schema import check_schema

SAFETENSORS_SUFFIX = '.safetensors'
# where a checkpoint (a key) or a .safetensors file (a metadata entry, as JSON) keeps the network's options
NETWORK_OPT_KEY = 'network_g'
# network options are a few hundred characters; more is not options (and JSON parsing costs memory)
MAX_STORED_OPTIONS_CHARS = 1 << 16
# the safetensors header or the pickle read here: ~150 bytes a tensor (78 KB for the demo checkpoint's two
# state dicts); a larger one is left to the library, as building it here could cost what the check saves
MAX_HEADER_BYTES = 4 << 20


def stored_options_source(path: str | os.PathLike) -> str:
    """How messages name the options stored in the weights file ``path``."""
    return f'{path} (its stored options)'


def options_from_json(text: str, path: str | os.PathLike) -> dict[str, Any]:
    """The options a ``.safetensors`` file stores as the JSON text of its metadata.

    Args:
        text (str): the metadata entry :data:`NETWORK_OPT_KEY`.
        path (str | os.PathLike): the file, for messages.

    Raises:
        UserError: naming the file, for text over MAX_STORED_OPTIONS_CHARS, not JSON, nested too deep
            to parse, holding an integer too long to convert, or not a mapping.
    """
    if len(text) > MAX_STORED_OPTIONS_CHARS:
        raise UserError(f'{path}: metadata {NETWORK_OPT_KEY!r} is over {MAX_STORED_OPTIONS_CHARS} characters')
    try:
        network_opt = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f'{path}: metadata {NETWORK_OPT_KEY!r} is not JSON ({first_line(err)})') from None
    except RecursionError:
        raise UserError(f'{path}: metadata {NETWORK_OPT_KEY!r} is nested too deep to be options') from None
    except ValueError:  # an integer of more digits than int() converts (sys.get_int_max_str_digits())
        raise UserError(f'{path}: metadata {NETWORK_OPT_KEY!r} holds an integer too long to be an option') from None
    if not isinstance(network_opt, dict):
        raise UserError(f'{path}: metadata {NETWORK_OPT_KEY!r} is not a mapping of options')
    return network_opt


def _placeholder(*args: Any) -> None:
    """What a tensor or its storage becomes: nothing of it is read."""


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles what ``torch.save`` writes for plain data and state dicts; refuses any other class."""

    # the classes and functions such a pickle names (torch's own weights_only loader allows these, and more)
    ALLOWED = {
        ('collections', 'OrderedDict'): OrderedDict,
        ('torch._utils', '_rebuild_tensor_v2'): _placeholder,
        ('torch._utils', '_rebuild_parameter'): _placeholder,
        ('torch._utils', '_rebuild_parameter_with_state'): _placeholder,
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        if module == 'torch' and name.endswith('Storage'):  # FloatStorage...: a storage's type
            return _placeholder
        raise pickle.UnpicklingError(f'{module}.{name} is not part of a state dict')

    def persistent_load(self, pid):
        return None  # a storage, whose bytes lie in another record of the zip: never read


def _checkpoint_options(path: str | os.PathLike) -> Any:
    """The ``network_g`` of the zip-format PyTorch file ``path``, its tensors never read; raises for any other file."""
    with zipfile.ZipFile(path) as archive:
        # torch.save puts every record in one top folder, named as the file was when saved
        info = archive.getinfo(f'{archive.namelist()[0].split("/")[0]}/data.pkl')
        if info.file_size > MAX_HEADER_BYTES:
            raise ValueError('pickle over the limit')
        with archive.open(info) as record:
            data = record.read(MAX_HEADER_BYTES + 1)
    if len(data) > MAX_HEADER_BYTES:
        raise ValueError('pickle over the limit')
    checkpoint = _StateDictUnpickler(io.BytesIO(data)).load()
    return checkpoint.get(NETWORK_OPT_KEY) if isinstance(checkpoint, dict) else None


def _safetensors_text(path: str | os.PathLike) -> str | None:
    """The ``network_g`` metadata text of ``.safetensors`` file ``path`` (its header: a length, then JSON)."""
    with open(path, 'rb') as f:
        (length,) = struct.unpack('<Q', f.read(8))
        if length > MAX_HEADER_BYTES:
            raise ValueError('header over the limit')
        header = json.loads(f.read(length))
    metadata = header.get('__metadata__') if isinstance(header, dict) else None
    text = metadata.get(NETWORK_OPT_KEY) if isinstance(metadata, dict) else None
    return text if isinstance(text, str) else None


def read_stored_options(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``network_g`` that the weights file ``path`` stores, read without torch; None where it stores none, or
    where the file is not read here (the library then reads it: :mod:`cnlrn_arch.weights.files`).

    Args:
        path (str | os.PathLike): a ``.safetensors`` file, or a PyTorch file: a bare state dict or
            BasicSR's checkpoint layout, whose key :data:`NETWORK_OPT_KEY` holds the options.

    Raises:
        UserError: for a ``.safetensors`` file whose stored options :func:`options_from_json` refuses.
    """
    if str(path).endswith(SAFETENSORS_SUFFIX):
        try:
            text = _safetensors_text(path)
        except (OSError, ValueError, RecursionError, struct.error):
            return None
        return None if text is None else options_from_json(text, path)
    try:
        network_opt = _checkpoint_options(path)
    except Exception:  # unpickling fails in many ways; each leaves the file to the library, which names it
        return None
    # as the library takes them: a non-empty mapping, else none (the network is then told from the weights)
    return network_opt if isinstance(network_opt, dict) and network_opt else None


def check_network_options(weights: str | os.PathLike, opt_path: str | os.PathLike | None = None) -> None:
    """Refuse, without torch, the ``network_g`` that the network of ``weights`` would be built from, where the
    option schema (:mod:`cnlrn_base.option_schema`) refuses it.

    Those are the options of the option file ``opt_path`` where given, else those stored in ``weights``, as
    :func:`cnlrn_arch.weights.loading.read_network_weights` takes them (it checks them again, and builds the
    network on the meta device). A ``weights`` that is no file (a URL, a model name) is left to the library.

    Args:
        weights (str | os.PathLike): the weights file, as ``--weights`` gives it.
        opt_path (str | os.PathLike | None): the ``--opt`` option file, or None.

    Raises:
        UserError: one line naming the file and the option, as the library's check would.
    """
    if opt_path:
        check_schema({NETWORK_OPT_KEY: load_option_file(opt_path).get(NETWORK_OPT_KEY)}, opt_path)
    elif os.path.isfile(weights):
        network_opt = read_stored_options(weights)
        if network_opt is not None:
            check_schema({NETWORK_OPT_KEY: network_opt}, stored_options_source(weights))

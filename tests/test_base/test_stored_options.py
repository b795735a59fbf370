"""The options stored in weights files, read without torch: those the library reads, never a tensor's bytes,
nothing pickled but a state dict's classes."""

import os
import pickle
import re
import zipfile

import pytest
import torch

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.weights.files import read_weights, write_checkpoint, write_safetensors
from cnlrn_base import stored_options
from cnlrn_base.errors import UserError
from cnlrn_base.stored_options import check_network_options, read_stored_options
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS

HUGE = dict(TINY_CNLRN, n_feats=4096)


@pytest.fixture(scope='module')
def state():
    return CNLRN(**TINY_CNLRN_ARGS).state_dict()


@pytest.mark.parametrize('suffix', ['pth', 'safetensors'])
@pytest.mark.parametrize('network_opt', [TINY_CNLRN, None])
def test_the_options_read_are_those_the_library_reads(state, tmp_path, suffix, network_opt):
    path = tmp_path / f'w.{suffix}'
    (write_checkpoint if suffix == 'pth' else write_safetensors)(state, path, network_opt)
    assert read_stored_options(path) == read_weights(path).network_opt == network_opt


def test_files_read_otherwise_have_none(state, tmp_path):
    torch.save(state, tmp_path / 'bare.pth')  # the authors' layout: a state dict alone
    torch.save({'params': state}, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)
    (tmp_path / 'text.pth').write_text('not weights')
    for name in ('bare.pth', 'legacy.pth', 'text.pth', 'missing.safetensors'):
        assert read_stored_options(tmp_path / name) is None


def rewritten(path, records):
    """Rewrite the zip ``path`` with ``records`` ({name: bytes or None to drop}) changed; return it."""
    with zipfile.ZipFile(path) as archive:
        kept = {name: archive.read(name) for name in archive.namelist()}
    for name, data in records.items():
        if data is None:
            kept.pop(name)
        else:
            kept[name] = data
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in kept.items():
            archive.writestr(name, data)
    return path


def test_no_tensor_is_read(state, tmp_path):
    path = tmp_path / 'w.pth'
    write_checkpoint(state, path, TINY_CNLRN)
    with zipfile.ZipFile(path) as archive:
        tensors = [name for name in archive.namelist() if '/data/' in name]
    rewritten(path, dict.fromkeys(tensors))  # torch.load now fails: the tensors' bytes are gone
    assert read_stored_options(path) == TINY_CNLRN


class Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_a_pickle_naming_other_code_runs_nothing_and_is_left_to_the_library(state, tmp_path):
    path = tmp_path / 'w.pth'
    write_checkpoint(state, path, HUGE)
    marker = tmp_path / 'MARKER'
    with zipfile.ZipFile(path) as archive:
        (pickled,) = [name for name in archive.namelist() if name.endswith('/data.pkl')]
    rewritten(path, {pickled: pickle.dumps({'network_g': HUGE, 'extra': Planted(marker)}, protocol=2)})
    assert read_stored_options(path) is None
    assert not marker.exists()


def test_a_header_or_pickle_over_the_limit_is_left_to_the_library(state, tmp_path, monkeypatch):
    for suffix, writer in (('pth', write_checkpoint), ('safetensors', write_safetensors)):
        writer(state, tmp_path / f'w.{suffix}', HUGE)
    monkeypatch.setattr(stored_options, 'MAX_HEADER_BYTES', 1000)
    assert read_stored_options(tmp_path / 'w.pth') is None
    assert read_stored_options(tmp_path / 'w.safetensors') is None


def test_the_option_file_given_decides_which_options_are_checked(state, tmp_path):
    write_checkpoint(state, tmp_path / 'huge.pth', HUGE)
    write_checkpoint(state, tmp_path / 'tiny.pth', TINY_CNLRN)
    (tmp_path / 'tiny.yml').write_text(f'network_g: {TINY_CNLRN}\n')
    (tmp_path / 'huge.yml').write_text(f'network_g: {HUGE}\n')
    check_network_options(tmp_path / 'huge.pth', tmp_path / 'tiny.yml')  # the network is built from tiny.yml
    check_network_options('demo')  # a model name, resolved by the library
    message = re.escape('network_g:n_feats must be an integer in [1, 256], got 4096')
    with pytest.raises(UserError, match=rf'huge\.pth \(its stored options\): {message}'):
        check_network_options(tmp_path / 'huge.pth')
    with pytest.raises(UserError, match=rf'huge\.yml: {message}'):
        check_network_options(tmp_path / 'tiny.pth', tmp_path / 'huge.yml')


def test_stored_options_with_an_integer_too_long_to_convert_are_one_line(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / 'long.safetensors'
    save_file({'w': torch.zeros(1)}, str(path), metadata={'network_g': '{"n_feats": 1' + '0' * 5000 + '}'})
    message = "long.safetensors: metadata 'network_g' holds an integer too long to be an option"
    with pytest.raises(UserError, match=message):
        check_network_options(path)  # cnlrn infer, before torch is imported
    with pytest.raises(UserError, match=message):
        read_weights(path)  # the library

"""Options stored with weights are checked by the option schema before the network they describe is built."""

import resource

import pytest
import torch

from cnlrn_arch.archs.cnlrn_arch import CNLRN
from cnlrn_arch.weights.files import write_checkpoint, write_safetensors
from cnlrn_arch.weights.loading import build_loaded
from cnlrn_base.errors import UserError
from cnlrn_base.stored_options import MAX_STORED_OPTIONS_CHARS, NETWORK_OPT_KEY
from tests.helpers import TINY_CNLRN, TINY_CNLRN_ARGS


@pytest.fixture(params=['pth', 'safetensors'])
def weights_with(request, tmp_path):
    """Write tiny CNLRN weights whose stored options are ``network_opt``, as .pth or .safetensors; the path."""

    def write(network_opt):
        path = tmp_path / f'w.{request.param}'
        writer = write_checkpoint if request.param == 'pth' else write_safetensors
        writer(CNLRN(**TINY_CNLRN_ARGS).state_dict(), path, network_opt)
        return path

    return write


@pytest.mark.parametrize(
    'changes, message',
    [
        (dict(n_feats=4096), 'network_g:n_feats must be an integer in [1, 256], got 4096'),
        (dict(n_rcabs=10**6), 'network_g:n_rcabs must be an integer in [1, 64], got 1000000'),
        (dict(n_feats=1e9), 'network_g:n_feats must be an integer in [1, 256], got 1000000000.0'),
        (dict(nonlocal_psize=[4, 4, 4, 3000]), 'network_g:nonlocal_psize must be a list of integers in [1, 64]'),
        (dict(type=['CNLRN']), "network_g:type must be text, got ['CNLRN']"),
        (dict(n_colors='3'), "network_g:n_colors must be an integer in [1, 4], got '3'"),
    ],
)
def test_absurd_stored_options_are_refused_before_building(weights_with, changes, message):
    path = weights_with(dict(TINY_CNLRN, **changes))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError) as err:
        build_loaded(path)
    assert str(err.value).startswith(f'{path} (its stored options): {message}')
    # nothing the options ask for was allocated (n_feats 4096 would take gigabytes)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000


def test_an_option_file_passed_with_the_weights_is_bounded_alike(tmp_path):
    write_checkpoint(CNLRN(**TINY_CNLRN_ARGS).state_dict(), tmp_path / 'w.pth')
    (tmp_path / 'big.yml').write_text(f'network_g: {dict(TINY_CNLRN, n_subgroups=100)}\n')
    with pytest.raises(UserError, match=r'big\.yml: network_g:n_subgroups must be an integer in \[1, 64\], got 100'):
        build_loaded(tmp_path / 'w.pth', tmp_path / 'big.yml')


def test_stored_options_within_bounds_build(weights_with):
    net, network_opt = build_loaded(weights_with(TINY_CNLRN))
    assert network_opt == TINY_CNLRN and isinstance(net, CNLRN)


def safetensors_with_metadata(path, text):
    from safetensors.torch import save_file

    save_file({'w': torch.zeros(1)}, str(path), metadata={NETWORK_OPT_KEY: text})
    return path


def test_huge_stored_options_are_refused_unparsed(tmp_path):
    path = safetensors_with_metadata(tmp_path / 'huge.safetensors', '{"a": "' + 'x' * MAX_STORED_OPTIONS_CHARS + '"}')
    with pytest.raises(UserError, match=f"huge.safetensors: metadata 'network_g' is over {MAX_STORED_OPTIONS_CHARS}"):
        build_loaded(path)


def test_deeply_nested_stored_options_are_one_line(tmp_path):
    path = safetensors_with_metadata(tmp_path / 'deep.safetensors', '[' * 30_000 + ']' * 30_000)
    with pytest.raises(UserError, match="deep.safetensors: metadata 'network_g' is nested too deep to be options"):
        build_loaded(path)

"""cnlrn_arch.training.basicsr_overrides: apply() checks basicsr, swaps each override in and undoes it; the
overrides that are neither resume (test_resume.py), distributed start-up (test_distributed_startup.py) nor locks
(test_experiment_lock.py).

The overridden names are called through basicsr's modules, so these tests only pass with the override in place.
"""

import errno
import os

import basicsr
import basicsr.models.sr_model
import basicsr.test
import basicsr.train
import basicsr.utils.options
import numpy as np
import pytest
import torch

from cnlrn_arch.training import basicsr_overrides
from cnlrn_arch.training.basicsr_overrides import OVERRIDDEN
from cnlrn_arch.training.resume import ResumableSampler
from cnlrn_base.errors import UserError

NAMES = [f'{module.__name__}.{name}' for module, name, _ in OVERRIDDEN]


def current():
    return [getattr(module, name) for module, name, _ in OVERRIDDEN]


def test_the_overrides_are_swapped_in_while_applied_and_basicsrs_own_are_back_after():
    own = current()
    with basicsr_overrides.apply() as applied:
        swapped = current()
        assert all(now is not before for now, before in zip(swapped, own, strict=True))
        assert basicsr.train.EnlargedSampler is ResumableSampler
        assert basicsr.train.load_resume_state == applied.load_resume_state
    assert current() == own
    applied.undo()  # a second undo changes nothing
    assert current() == own


def test_an_inner_application_gives_back_the_outer_ones():
    own = current()
    with basicsr_overrides.apply():
        outer = current()
        with basicsr_overrides.apply():
            assert current() != outer
        assert current() == outer
    assert current() == own


def test_every_override_says_why_basicsr_has_no_hook_for_it():
    assert all(why and '\n' not in why for _, _, why in OVERRIDDEN)
    assert len(set(NAMES)) == len(NAMES)


def test_another_basicsr_release_is_refused_before_anything_is_swapped(monkeypatch):
    monkeypatch.setattr(basicsr, '__version__', '1.4.3')
    own = current()
    with pytest.raises(UserError) as err:
        basicsr_overrides.apply()
    assert str(err.value) == (
        'basicsr 1.4.3 is installed, but cnlrn_arch overrides parts of basicsr 1.4.2: '
        'install basicsr==1.4.2 (see the README)'
    )
    assert current() == own


@pytest.mark.parametrize('overridden', OVERRIDDEN, ids=NAMES)
def test_a_missing_name_is_refused_before_anything_is_swapped(overridden, monkeypatch):
    module, name, _ = overridden
    own = current()
    monkeypatch.delattr(module, name)
    with pytest.raises(UserError) as err:
        basicsr_overrides.apply()
    kind = 'class' if name == 'EnlargedSampler' else 'function'
    assert str(err.value) == (
        f'basicsr 1.4.2 lacks {module.__name__}.{name} (or it is not the {kind} cnlrn_arch '
        'replaces), so the installation is modified: reinstall basicsr==1.4.2 (see the README)'
    )
    monkeypatch.undo()
    assert current() == own


@pytest.mark.parametrize(
    'module, name, stand_in',
    [
        (basicsr.train, 'EnlargedSampler', torch.utils.data.SequentialSampler),  # a class, but not a base of ours
        (basicsr.utils.options, 'init_dist', 'nccl'),
    ],
)
def test_a_name_of_another_kind_is_refused(module, name, stand_in, monkeypatch):
    monkeypatch.setattr(module, name, stand_in)
    with pytest.raises(UserError, match=f'lacks {module.__name__}.{name} '):
        basicsr_overrides.apply()


def test_a_result_image_that_cannot_be_written_is_one_line_naming_it_and_the_old_one_stays(
    basicsr_overrides, tmp_path, monkeypatch
):
    path = tmp_path / 'visualization' / 'img.png'
    image = np.full((4, 4, 3), 7, np.uint8)
    basicsr.models.sr_model.imwrite(image, str(path))  # the folder made, as basicsr's does
    old = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(UserError) as err:
        basicsr.models.sr_model.imwrite(image + 1, str(path))
    assert str(err.value).startswith(
        f'cannot write {path}: No space left on device on the disk of {path.parent} ('
    ) and str(err.value).endswith(' MiB free)')
    assert os.listdir(path.parent) == ['img.png'] and path.read_bytes() == old

"""The plain-data YAML loader, ``--force_yml`` without eval and the writer that hands basicsr the options."""

import pytest
import yaml
from basicsr.utils.options import ordered_yaml

from cnlrn_base.errors import UserError
from cnlrn_base.option_file import apply_overrides, load_option_file, write_option_file

# tags that construct Python objects (or bytes, sets): each with the tag as the message shows it
OBJECT_TAGS = [
    ('!!python/object/apply:os.system ["touch {marker}"]', '!!python/object/apply:os.system'),
    ('!!python/object/apply:pathlib.Path.touch ["{marker}"]', '!!python/object/apply:pathlib.Path.touch'),
    ('!!python/object/new:pathlib.Path ["{marker}"]', '!!python/object/new:pathlib.Path'),
    ('!!python/name:os.system', '!!python/name:os.system'),
    ('!!binary aGVsbG8=', '!!binary'),
    ('!!set {a: ~}', '!!set'),
    ('!custom 1', '!custom'),
]


def write(tmp_path, text, name='o.yml'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_basicsr_loader_runs_the_tag_that_the_tests_below_refuse(tmp_path):
    """The control: without this project's loader, reading the file creates the marker."""
    marker = tmp_path / 'MARKER'
    with open(write(tmp_path, f'a: !!python/object/apply:os.system ["touch {marker}"]\n')) as f:
        yaml.load(f, Loader=ordered_yaml()[0])
    assert marker.exists()


@pytest.mark.parametrize('value, shown', OBJECT_TAGS)
def test_a_tag_is_refused_naming_file_and_line_and_nothing_runs(tmp_path, value, shown):
    marker = tmp_path / 'MARKER'
    path = write(tmp_path, f'name: x\nnetwork_g:\n  type: CNLRN\n  n_feats: {value.replace("{marker}", str(marker))}\n')
    with pytest.raises(UserError) as err:
        load_option_file(path)
    assert str(err.value).startswith(f'{path}:4:12: tag {shown} is not allowed: option files hold plain data only')
    assert not marker.exists()


def test_duplicate_key_names_both_lines(tmp_path):
    path = write(tmp_path, 'name: x\ntrain:\n  total_iter: 10\n  ema_decay: 0\n  total_iter: 20\n')
    with pytest.raises(UserError, match=r'o\.yml:5:3: duplicate key \'total_iter\' \(first at line 3\)$'):
        load_option_file(path)


def test_duplicate_key_in_a_flow_mapping(tmp_path):
    with pytest.raises(UserError, match=r"o\.yml:1:17: duplicate key 'a' \(first at line 1\)"):
        load_option_file(write(tmp_path, 'x: {a: 1, b: 2, a: 3}\n'))


def test_plain_data_keeps_order_merges_and_dates_as_text(tmp_path):
    text = (
        'zeta: 1\nbase: &base {lr: !!float 2e-4, betas: [0.9, 0.99]}\nalpha:\n  <<: *base\n  lr: 1.0e-3\n'
        'when: 2024-01-01\nflags: [true, ~, .inf]\n'
    )
    opt = load_option_file(write(tmp_path, text))
    assert list(opt) == ['zeta', 'base', 'alpha', 'when', 'flags']
    assert opt['alpha'] == {'lr': 1e-3, 'betas': [0.9, 0.99]}
    assert opt['when'] == '2024-01-01'
    assert opt['flags'] == [True, None, float('inf')]


@pytest.mark.parametrize(
    'entry, expected',
    [
        ('train:optim_g:lr=!!float 1e-3', 1e-3),
        ('train:optim_g:lr=0.5', 0.5),
        ('train:optim_g:lr=3', 3),
        ('train:optim_g:lr=-1', -1),
        ('train:optim_g:lr=~', None),
        ('train:optim_g:lr=None', None),
        ('train:optim_g:lr=FALSE', False),
        ('train:optim_g:lr=[0.9, 0.99]', [0.9, 0.99]),
        ('train:optim_g:lr=a=b', 'a=b'),
        (' train : optim_g : lr = text ', 'text'),
        ('train:optim_g:new=1', 1),
    ],
)
def test_override_values_read_as_basicsr_would_without_eval(entry, expected):
    opt = {'train': {'optim_g': {'lr': 1.0}}}
    apply_overrides(opt, [entry], 'o.yml')
    key = entry.split('=')[0].split(':')[-1].strip()
    assert opt['train']['optim_g'][key] == expected


@pytest.mark.parametrize(
    'entry, message',
    [
        ('train:optim_x:lr=1', '--force_yml train:optim_x:lr=1: o.yml has no option train:optim_x'),
        ('train:total_iter:x=1', '--force_yml train:total_iter:x=1: o.yml: train:total_iter is 5, not a mapping'),
        ('train', '--force_yml train: expected KEY=VALUE'),
        ('train::x=1', '--force_yml train::x=1: expected KEY=VALUE'),
        ('name=[1,', '--force_yml name=[1,: invalid value: '),
        ('name=!!python/object/apply:os.system ["true"]', 'invalid value: tag !!python/object/apply:os.system is not'),
        ('name={a: 1, a: 2}', "invalid value: duplicate key 'a' (first at line 1)"),
    ],
)
def test_bad_override_is_one_line(entry, message):
    with pytest.raises(UserError) as err:
        apply_overrides({'name': 'x', 'train': {'total_iter': 5}}, [entry], 'o.yml')
    assert message in str(err.value) and '\n' not in str(err.value)


def test_key_path_is_keys_not_code(tmp_path):
    """basicsr builds ``opt["KEY"]=value`` from the key path and exec()s it; here it is a key like any other."""
    marker = tmp_path / 'MARKER'
    keys = f'name"];__import__("os").system("touch {marker}");opt["name'
    opt = apply_overrides({'name': 'x'}, [f'{keys}=y'], 'o.yml')
    assert opt == {'name': 'x', keys: 'y'} and not marker.exists()


def test_written_options_read_back_alike_by_basicsr(tmp_path):
    """What basicsr's own loader makes of the file written for it: the same values, in order, header ignored."""
    opt = {
        'name': 'on',  # text YAML 1.1 would read as a boolean unquoted
        'num_gpu': 'auto',
        'manual_seed': None,
        'train': {'optim_g': {'lr': 2e-4, 'betas': [0.9, 0.99]}, 'total_iter': 5000.0, 'eta_min': 1e-7},
        'path': {'resume_state': '~'},
        'when': '2024-01-01',
    }
    path = tmp_path / 'w.yml'
    write_option_file(opt, path, 'the options of: basicsr train -opt w.yml')
    with open(path) as f:
        assert f.readline() == '# the options of: basicsr train -opt w.yml\n'
        f.seek(0)
        read = yaml.load(f, Loader=ordered_yaml()[0])
    assert read == opt and list(read) == list(opt) and list(read['train']) == list(opt['train'])


def laughs(levels):
    """A 'billion laughs' option file: each level an alias list of ten of the level before, 10**levels values."""
    lines = ['l0: &l0 [ha, ha, ha, ha, ha, ha, ha, ha, ha, ha]']
    lines += [f'l{i}: &l{i} [{", ".join([f"*l{i - 1}"] * 10)}]' for i in range(1, levels)]
    return '\n'.join(lines) + '\n'


def test_aliases_of_aliases_are_refused_before_anything_is_built(tmp_path):
    with pytest.raises(UserError, match=r'o\.yml:5: more than 100000 values once aliases are expanded'):
        load_option_file(write(tmp_path, laughs(9)))


def test_aliases_within_the_limit_load(tmp_path):
    # 11,111 values expanded: an anchor reused this much is still an option file
    assert len(load_option_file(write(tmp_path, laughs(4)))['l3']) == 10


def test_nesting_deeper_than_the_limit_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r'o\.yml:1: options nested deeper than 32 levels'):
        load_option_file(write(tmp_path, 'a: ' + '[' * 33 + ']' * 33 + '\n'))
    assert load_option_file(write(tmp_path, 'a: ' + '[' * 31 + ']' * 31 + '\n'))['a'] == [
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    ]


def test_deep_nesting_far_past_the_recursion_limit_is_one_line(tmp_path):
    with pytest.raises(UserError, match='nested deeper than 32 levels'):
        load_option_file(write(tmp_path, 'a: ' + '[' * 100_000 + ']' * 100_000 + '\n'))


def test_a_file_over_the_size_limit_is_refused_unparsed(tmp_path):
    path = write(tmp_path, 'a: 1\n' + '#' * (1 << 20) + '\n')
    with pytest.raises(UserError, match=r'o\.yml: over 1 MB, not an option file'):
        load_option_file(path)


@pytest.mark.parametrize('value', ['!!int abc', '1' + '0' * 5000])
def test_an_integer_that_int_cannot_read_is_one_line(tmp_path, value):
    with pytest.raises(UserError, match=r'o\.yml:2:12: not an integer of at most \d+ digits$'):
        load_option_file(write(tmp_path, f'network_g:\n  n_feats: {value}\n'))

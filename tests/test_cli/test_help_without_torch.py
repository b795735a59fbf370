"""``cnlrn SUBCOMMAND --help`` and usage errors answer without importing the library (torch takes seconds).

Each case runs in a fresh interpreter, so that no import of another case or of the tests hides one.
"""

import importlib

import pytest

from cnlrn_base.command_defaults import QUALITY_VARIANTS
from cnlrn_cli.arguments import description, plain_text
from cnlrn_cli.main import COMMANDS
from tests.helpers import run_main_afresh

# a usage error of each subcommand, and what its one line names
USAGE_ERRORS = {
    'demo': (['--out'], '--out'),
    'make-demo-data': (['--crops-per-photo', '0'], '--crops-per-photo'),
    'infer': (['-i', 'a.png', '-o', 'out', '--tile-pad', '-1'], '--tile-pad'),
    'export': (['--weights', 'w.pth'], '--safetensors'),
    'prepare-reds': (['--workers', '0'], '--workers'),
    'prepare-dvd': (['--workers', 'many'], '--workers'),
    'bench': (['--sizes', '90by160'], '--sizes'),
    'bench-quality': (['--variants', 'no_such_variant'], '--variants'),
    'gpu-check': (['--out', 'check', '--deadline-s', '5'], '--deadline-s'),
    'serve': (['--port', '0'], '--port'),
}
# the library modules whose docstrings are commands' --help texts
HELP_MODULES = (
    'cnlrn_arch.demo',
    'cnlrn_arch.data_prep.demo_data',
    'cnlrn_arch.data_prep.dvd',
    'cnlrn_arch.data_prep.reds',
    'cnlrn_tools.speed.speed_bench',
    'cnlrn_tools.quality.quality_bench',
    'cnlrn_tools.gpu_check.gpu_check',
)


def test_every_subcommand_has_a_usage_error_here():
    assert sorted(USAGE_ERRORS) == sorted(COMMANDS)


@pytest.mark.parametrize('case', ['help', 'usage error'])
@pytest.mark.parametrize('command', list(COMMANDS))
def test_answers_without_importing_torch(command, case, tmp_path):
    args, named = (['--help'], None) if case == 'help' else USAGE_ERRORS[command]
    result = run_main_afresh('cnlrn_cli.main', command, *args, cwd=tmp_path)
    last = result.stdout.strip().splitlines()[-1]
    if case == 'help':
        assert result.stdout.startswith(f'usage: cnlrn {command} '), result.stdout + result.stderr
        assert last == 'exit status 0 | torch imported: False', result.stderr
    else:
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith(f'cnlrn {command}: error: ') and named in error, result.stderr
        assert last == 'exit status 2 | torch imported: False', result.stderr


@pytest.mark.parametrize('module', HELP_MODULES)
def test_help_text_read_from_the_source_is_the_modules_docstring(module):
    assert description(module) == plain_text(importlib.import_module(module).__doc__.split('\n', 2)[2])


def test_bench_quality_offers_the_librarys_variants_in_its_order():
    from cnlrn_tools.quality.variants import BY_NAME

    assert tuple(BY_NAME) == QUALITY_VARIANTS

"""The installed console scripts, each started once as a process: they run, and ``cnlrn`` answers without torch.

Everything else about the commands runs in this process: test_runner.py and the tests of each subcommand.
"""

import pytest

from tests.helpers import run_command

pytestmark = pytest.mark.slow


def modules_imported(stderr):
    """Names of the modules a process imported, from its ``-X importtime`` report on stderr."""
    return {line.rsplit('|', 1)[1].strip() for line in stderr.splitlines() if line.startswith('import time:')}


def test_cnlrn_help_and_version_answer_without_importing_torch():
    # through the installed script; test_help_without_torch.py runs every subcommand's help and a usage error
    runs = {
        args: run_command('cnlrn', *args, timeout=60, PYTHONPROFILEIMPORTTIME='1')
        for args in (('--help',), ('--version',), ('infer', '--help'))
    }
    for result in runs.values():
        assert result.returncode == 0, result.stderr
        modules = modules_imported(result.stderr)
        assert 'cnlrn_cli.main' in modules  # the report was read
        assert not [name for name in modules if name.split('.')[0] == 'torch']
    assert runs[('--help',)].stdout.startswith('usage: cnlrn ') and 'bench-quality' in runs[('--help',)].stdout
    assert runs[('--version',)].stdout.strip() == 'cnlrn 0.1.0'
    assert runs[('infer', '--help')].stdout.startswith('usage: cnlrn infer ')


def test_basicsr_help():
    result = run_command('basicsr', '--help', timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('usage: basicsr ')

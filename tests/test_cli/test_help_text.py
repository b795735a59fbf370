"""Help texts read as plain text: the module docstrings they come from are reStructuredText."""

import pytest

from cnlrn_cli import basicsr_runner, main
from cnlrn_cli.arguments import plain_text

MARKUP = ('`', ':mod:', ':func:', ':class:', ':meth:')


def help_text(entry_point, args, capsys):
    with pytest.raises(SystemExit) as exit_:
        entry_point(args)
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize('command', list(main.COMMANDS))
def test_every_subcommands_help_is_free_of_markup(command, capsys):
    text = help_text(main.main, [command, '--help'], capsys)
    assert text.startswith(f'usage: cnlrn {command} ')
    assert not [mark for mark in MARKUP if mark in text], text


def test_the_commands_own_help_is_free_of_markup(capsys):
    for text in (help_text(main.main, ['--help'], capsys), help_text(basicsr_runner.main, ['--help'], capsys)):
        assert '`' not in text, text


def test_demo_help_shows_its_commands_plainly(capsys):
    text = help_text(main.main, ['demo', '--help'], capsys)
    assert '1. cnlrn make-demo-data (blurry LR' in text


def test_literals_and_roles_become_their_text():
    docstring = 'see :mod:`.gemm_peak` and :func:`~a.b.resolve`, as ``speed: {tf32: false}``\nor ``a\nb`` trains'
    assert plain_text(docstring) == 'see gemm_peak and a.b.resolve, as speed: {tf32: false}\nor a\nb trains'

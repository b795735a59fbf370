"""Errors caused by what the user gave us (options, data, weights, images).

The command-line entry points print these as one line and exit non-zero;
anything else is a bug and keeps its traceback.
"""

import sys
from contextlib import contextmanager


class UserError(Exception):
    """A problem the user can fix; the message names the culprit."""


def user_message(err):
    """The one-line message of a UserError, also when a DataLoader worker re-raised it.

    torch re-raises a worker's exception as the same type whose message is
    the worker's whole traceback; its last line holds the original message.
    """
    text = str(err).strip()
    if '\nOriginal Traceback' not in text:
        return text
    last = text.splitlines()[-1]
    prefix = f'{UserError.__module__}.{UserError.__qualname__}: '
    return last[len(prefix) :] if last.startswith(prefix) else last


def first_line(err):
    """The first line of ``err``'s message, or its type's name when the message is empty (e.g. ``EOFError()``)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


@contextmanager
def exit_on_user_error(prog):
    """Inside, a UserError ends the process as the entry points end it: ``prog: error: ...`` on stderr, exit 2.

    Args:
        prog (str): the command, as its messages name it (e.g. 'basicsr train').
    """
    try:
        yield
    except UserError as err:
        print(f'{prog}: error: {user_message(err)}', file=sys.stderr)
        sys.exit(2)

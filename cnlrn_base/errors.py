"""Errors caused by what the user gave us (options, data, weights, images).

The command-line entry points print these as one line and exit non-zero;
anything else is a bug and keeps its traceback.
"""


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

"""Errors caused by what the user gave us (options, data, weights, images).

The command-line entry points print these as one line and exit non-zero;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem the user can fix; the message names the culprit."""

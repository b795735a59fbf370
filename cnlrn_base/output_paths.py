"""Outputs that would replace an input are refused before anything is read or written; outputs carry a mark."""

import os

from cnlrn_base.errors import UserError

# what the files ``cnlrn infer`` writes carry (a PNG's Software text, a video's comment tag), so that a later run
# knows a file of an output's name is its own to replace, and any other file is the user's
OUTPUT_MARK = 'cnlrn infer'


def file_id(path):
    """(device, inode) of the file ``path`` names, or None where there is none (reading a broken link reports it).

    Equal ids see through symlinks, hard links and case-insensitive file names: one file, however it is named.
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def refuse_input_as_output(output, inputs):
    """Raise ``UserError`` when ``output`` is the same file as one of ``inputs`` (option -> path, or None)."""
    owner = file_id(output)
    for option, path in inputs.items():
        if owner is not None and path is not None and file_id(path) == owner:
            raise UserError(f'{output} is the input {option} {path}: write the output to another file')

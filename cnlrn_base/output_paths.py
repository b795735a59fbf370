"""Outputs that would replace an input are refused before anything is read or written; outputs carry a mark."""

import os

from cnlrn_base.errors import UserError

# what the files ``cnlrn infer`` writes carry (a PNG's Software text, a video's comment tag), so that a later run
# knows a file of an output's name is its own to replace, and any other file is the user's
OUTPUT_MARK = 'cnlrn infer'


def refuse_input_as_output(output, inputs):
    """Raise ``UserError`` when ``output`` is the same file as one of ``inputs`` (option -> path, or None).

    Symlinks, hard links and other spellings of one path count as the same file.
    """
    for option, path in inputs.items():
        if path is not None and os.path.exists(output) and os.path.exists(path) and os.path.samefile(output, path):
            raise UserError(f'{output} is the input {option} {path}: write the output to another file')

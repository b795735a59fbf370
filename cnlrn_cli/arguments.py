"""argparse types and arguments shared by several commands, and a library module's help text without importing it."""

import argparse
import ast
import importlib.util
import math
import os
import re

# reStructuredText in docstrings, shown as plain text in --help: ``literal`` and :role:`target` (a target's leading
# '.' or '~', Sphinx's hints on finding and showing it, is dropped)
REST_LITERAL = re.compile(r'``([^`]+)``')
REST_ROLE = re.compile(r':[a-z]+:`[.~]?([^`]+)`')


def int_at_least(minimum):
    """argparse type: an integer of at least ``minimum``."""

    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be at least {minimum}, got {value}')
        return value

    parse.__name__ = 'int'  # argparse names the type in "invalid int value"
    return parse


positive_int = int_at_least(1)


def positive_float(text):
    """argparse type: a finite number above 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f'must be a number above 0, got {text}')
    return value


positive_float.__name__ = 'float'  # argparse names the type in "invalid float value"


def add_device_argument(parser):
    """``--device auto|cpu|cuda`` (default auto), as :func:`cnlrn_arch.inference.settings.resolve_device` takes it."""
    parser.add_argument(
        '--device',
        choices=('auto', 'cpu', 'cuda'),
        default='auto',
        help='auto: CUDA when available (default: %(default)s)',
    )


def add_opt_argument(parser):
    """``--opt X.yml``: the option file describing the network, for weights that do not describe themselves."""
    parser.add_argument(
        '--opt',
        metavar='X.yml',
        help='optional option file whose network_g gives the architecture (default: the configuration stored '
        'in the weights, or inferred from their shapes)',
    )


def height_width(text):
    """argparse type: 'HEIGHTxWIDTH' -> (height, width), both positive."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not HEIGHTxWIDTH, e.g. 180x320') from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'{text!r} needs positive sides')
    return height, width


def data_prep_command(module, prepare, default_root, root_help):
    """``add_arguments`` of a data preparation command: ``--root`` and ``--workers``, then ``prepare(root, workers)``.

    Args:
        module (str): the dotted name of the recipe's library module; its docstring is the command's help.
        prepare: the function that runs the recipe (importing the library), called with the root and the worker count.
        default_root (str): where the extracted data set is by default.
        root_help (str): what ``--root`` names.
    """

    def add_arguments(parser):
        parser.description = description(module)
        parser.add_argument('--root', default=default_root, help=f'{root_help} (default: %(default)s)')
        parser.add_argument(
            '--workers',
            type=positive_int,
            default=os.cpu_count() or 1,
            metavar='N',
            help='processes for reading, resizing and writing images (default: number of CPUs)',
        )
        parser.set_defaults(run=lambda args: prepare(args.root, args.workers))

    return add_arguments


def plain_text(docstring):
    """``docstring`` without its reStructuredText markup: a terminal shows the backticks and roles as they are."""
    return REST_ROLE.sub(r'\1', REST_LITERAL.sub(r'\1', docstring))


def description(module):
    """The docstring of library module ``module`` (a dotted name) without its first line: its command's ``--help``.

    The docstring is read from the module's source, which is not run: the library imports torch, which takes seconds,
    and ``--help`` should answer at once. Of a top-level package, ``find_spec`` locates the folder without running it.
    """
    package, *path = module.split('.')
    folder = importlib.util.find_spec(package).submodule_search_locations[0]
    with open(os.path.join(folder, *path) + '.py', encoding='utf-8') as f:
        return plain_text(ast.get_docstring(ast.parse(f.read()), clean=False).split('\n', 2)[2])

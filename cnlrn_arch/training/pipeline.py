"""BasicSR's own train/test pipelines with the plugins loaded: what ``basicsr train|test`` and
``python -m cnlrn_arch.train|test`` run.

``run_entry_point('train', ['-opt', 'X.yml', ...])`` runs
``basicsr.train.train_pipeline`` with the current directory as root, so
``experiments/``, ``results/`` and ``tb_logger/`` appear where the user stands.
Before that it imports every package that declares itself in the
``basicsr.plugins`` entry-point group (this one first), so any BasicSR
plugin's networks, data sets, losses and models are available. Ctrl-C during
a training ends in one line naming the last complete checkpoint on disk.
"""

import importlib
import os
import shlex
import sys
import tempfile
from importlib.metadata import entry_points

from cnlrn_base.errors import UserError, exit_on_user_error
from cnlrn_base.pipeline_arguments import pipeline_parser

PLUGIN_GROUP = 'basicsr.plugins'
OWN_PLUGIN = 'cnlrn_arch'


def load_plugins():
    """Import this project, then every other registered BasicSR plugin."""
    importlib.import_module(OWN_PLUGIN)
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if entry.module != OWN_PLUGIN:
            importlib.import_module(entry.module)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a training; the message says what the run left, read from its experiment folder."""


def run_pipeline(phase, argv, prog):
    """Run BasicSR's ``phase`` pipeline ('train' or 'test') on BasicSR-style ``argv``.

    basicsr's parse_options would load ``-opt`` with a YAML loader that runs
    Python tags and apply ``--force_yml`` with eval and exec. So the options are
    read as plain data, overridden and checked here, and basicsr parses a plain
    copy of them, written by us, with no ``--force_yml``; the rest of its
    parsing (distributed setup, seeds, paths) stays basicsr's. A given
    ``path:resume_state`` is read here, once. basicsr's overrides
    (:mod:`.basicsr_overrides`) and ``sys.argv`` are what they were once it ends.

    Raises:
        UserError: the arguments, the options or the resume state are wrong, or basicsr is not 1.4.2.
        TrainingInterrupted: Ctrl-C during a training, saying what it left.
    """
    load_plugins()
    from basicsr.test import test_pipeline
    from basicsr.train import train_pipeline

    from cnlrn_arch.options.check import check_options
    from cnlrn_arch.training import basicsr_overrides
    from cnlrn_arch.training.resume import read_training_state, what_training_left
    from cnlrn_base.option_file import write_option_file

    args = pipeline_parser(prog).parse_args(argv)
    is_train = phase == 'train'
    opt = check_options(args.opt, is_train, overrides=args.force_yml or ())
    resume_state = None
    if is_train and not args.auto_resume and opt['path'].get('resume_state'):  # --auto_resume ignores it
        where = f'{args.opt} with --force_yml' if args.force_yml else args.opt
        resume_state = read_training_state(opt['path']['resume_state'], where)
    root = os.getcwd()
    _make_output_folder(os.path.join(root, 'experiments' if is_train else 'results'))
    if is_train and opt['logger'].get('use_tb_logger') and 'debug' not in opt['name']:
        _make_output_folder(os.path.join(root, 'tb_logger'))  # basicsr's train_pipeline logs there
    # the same basename: basicsr copies -opt into the experiment folder, which so records the options run;
    # kept until the pipeline ends, as basicsr copies it after parsing
    with tempfile.TemporaryDirectory(prefix='cnlrn-options-') as folder:
        plain = os.path.join(folder, os.path.basename(args.opt))
        write_option_file(opt, plain, f'the options run by: {prog} {shlex.join(argv)}')
        our_argv = sys.argv
        # BasicSR's parse_options reads sys.argv itself
        sys.argv = [prog, '-opt', plain, *_passed_on(args)]
        try:
            with basicsr_overrides.apply(opt, resume_state) as overrides:
                try:
                    (train_pipeline if is_train else test_pipeline)(root)
                except KeyboardInterrupt:
                    if not is_train:
                        raise
                    parsed = overrides.parsed_opt  # None until basicsr parsed the options
                    left = (
                        f'; {what_training_left(parsed)}'
                        if parsed
                        else ' before training started; this run saved nothing'
                    )
                    raise TrainingInterrupted(left) from None
        finally:
            sys.argv = our_argv


def _passed_on(args):
    """basicsr's arguments besides -opt: all but ``--force_yml``, which is applied already."""
    flags = ['--auto_resume'] * args.auto_resume + ['--debug'] * args.debug
    return ['--launcher', args.launcher, '--local_rank', str(args.local_rank), *flags]


def _make_output_folder(folder):
    """Create ``folder`` (basicsr's experiments/ or results/), or say in one line why it cannot be written."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f'{folder} is a file, not a folder: move it away or run from another folder')
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise UserError(f'cannot create {folder} ({err.strerror or err}): run from a folder you can write to') from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f'{folder} is not writable: run from a folder you can write to')


def run_entry_point(phase, argv, prog):
    """Run a pipeline; user errors become one line on stderr and exit code 2, Ctrl-C one line and exit code 130."""
    try:
        with exit_on_user_error(prog):
            run_pipeline(phase, argv, prog)
    except KeyboardInterrupt as err:
        left = str(err) if isinstance(err, TrainingInterrupted) else ''
        print(f'{prog}: interrupted{left}', file=sys.stderr)
        sys.exit(130)

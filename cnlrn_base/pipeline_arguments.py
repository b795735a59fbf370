"""The arguments of basicsr 1.4.2's train and test pipelines, read here first (its parse_options keeps no
parser to reuse).

Torch-free: ``basicsr train|test`` reads them, and loads the option file they name (bounded in size, depth
and aliases), before it imports torch and the plugins (:mod:`cnlrn_cli.basicsr_runner`); the pipeline
itself reads them again (:mod:`cnlrn_arch.training.pipeline`).
"""

import argparse


def pipeline_parser(prog):
    """The parser of basicsr's pipeline arguments (``-opt``, ``--launcher``, ``--force_yml``...).

    Args:
        prog (str): the command, as usage and errors name it (e.g. 'basicsr train').
    """
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', type=int, default=0)
    parser.add_argument(
        '--force_yml', nargs='+', default=None, help='Force to update yml files. Examples: train:ema_decay=0.999'
    )
    return parser

"""The import graph: no cycle between modules or between packages, and the layers of pyproject.toml enforced.

The layers themselves are import-linter's contract (``make lint`` runs ``lint-imports``); here a planted
violation shows that the contract catches one.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.helpers import REPO_DIR

PACKAGES = ('cnlrn_cli', 'cnlrn_tools', 'cnlrn_arch', 'cnlrn_base')


def cycles(edges):
    """The strongly connected components of more than one node (Tarjan), each sorted; plus self-loops."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(set(edges) | {m for targets in edges.values() for m in targets}):
        if node not in index:
            visit(node)
    return found


def package_of(module):
    """The package a module counts towards: ``cnlrn_arch.inference`` for ``cnlrn_arch.inference.tiling``."""
    return '.'.join(module.split('.')[:2])


@pytest.fixture(scope='module')
def graph():
    return grimp.build_graph(*PACKAGES)


def module_edges(graph):
    """Imports between modules, lazy ones inside functions included; a package's ``__init__`` is a module."""
    return {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}


def test_no_cycle_between_modules(graph):
    assert cycles(module_edges(graph)) == []


def test_no_cycle_between_packages(graph):
    edges = {}
    for module, targets in module_edges(graph).items():
        source = package_of(module)
        edges.setdefault(source, set()).update(package_of(t) for t in targets if package_of(t) != source)
    # the root package's __init__ imports the packages that register in BasicSR: not a dependency of theirs on it
    edges.pop('cnlrn_arch')
    assert cycles(edges) == []


def test_cycle_finder_finds_planted_cycles():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
    assert cycles({'a': {'a'}}) == [['a']]
    assert cycles({'a': {'b'}, 'b': set()}) == []


@pytest.mark.slow
def test_layer_contract_catches_a_library_module_importing_a_command(tmp_path):
    """lint-imports passes on the tree as it is and fails once a base module imports a command."""
    for name in (*PACKAGES, 'pyproject.toml'):
        source = Path(REPO_DIR) / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy(source, tmp_path / name)
    lint = [str(Path(sys.executable).with_name('lint-imports')), '--no-cache']
    env = {'PYTHONPATH': str(tmp_path), 'PATH': '/usr/bin:/bin'}
    clean = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    errors = tmp_path / 'cnlrn_base' / 'errors.py'
    errors.write_text(errors.read_text() + '\nfrom cnlrn_cli import arguments  # noqa: E402, F401\n')
    planted = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert planted.returncode == 1, planted.stdout + planted.stderr
    assert 'cnlrn_base is not allowed to import cnlrn_cli' in planted.stdout

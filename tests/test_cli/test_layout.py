"""The package layout: the library never imports the command layer.

That ``cnlrn --help`` stays light (imports no torch) is checked on the installed script, in test_console_scripts.py.
"""

import ast
import pathlib

import cnlrn_arch

LIBRARY = pathlib.Path(cnlrn_arch.__file__).parent


def imported_modules(path):
    """Absolute names of the modules ``path`` imports (relative imports resolved against its package)."""
    package = '.'.join(path.relative_to(LIBRARY.parent).with_suffix('').parts[:-1])
    if path.name == '__init__.py':
        package = '.'.join(path.relative_to(LIBRARY.parent).parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit('.', node.level - 1)[0] if node.level else ''
            module = '.'.join(filter(None, [base, node.module]))
            names += [module] + [f'{module}.{alias.name}' for alias in node.names]
    return names


def test_library_never_imports_the_command_layer():
    edges = [
        (str(path.relative_to(LIBRARY.parent)), name)
        for path in sorted(LIBRARY.rglob('*.py'))
        for name in imported_modules(path)
        if name == 'cnlrn_cli' or name.startswith('cnlrn_cli.')
    ]
    assert not edges, f'library modules importing the command layer: {edges}'


def test_import_walker_sees_relative_imports():
    """The walker must resolve ``from ..x import y``, or the test above could pass on any tree."""
    names = imported_modules(LIBRARY / 'benchmark' / 'speed' / 'run.py')
    assert 'cnlrn_arch.utils.errors.UserError' in names and 'cnlrn_arch.benchmark.speed.flops' in names

"""Option files as plain data: the one YAML loader of the project, ``--force_yml`` without eval, a safe writer.

basicsr 1.4.2 parses option files with a full ``yaml.Loader``, which runs
``!!python/object/apply:os.system [...]``, and applies ``--force_yml`` with
``eval`` and ``exec``. Here a file holds only mappings (in file order), lists,
strings, numbers, booleans and null; any other tag is a one-line error naming
the file and line, raised before anything is constructed. A key given twice in
a mapping is an error naming both lines (PyYAML would keep the last silently).

What a file may claim is bounded before anything is built: its size, its
nesting depth, and the number of values it holds once YAML's aliases are
expanded (aliases of aliases, "billion laughs", would otherwise make a few
hundred bytes into a structure that every later walk over the options expands).
Torch-free, so that ``basicsr train|test`` bounds its option file before torch is imported.
"""

import sys
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from cnlrn_base.errors import UserError, first_line

# tags of plain data; timestamps (an unquoted 2024-01-01) stay the text they are written as
PLAIN_TAGS = ('null', 'bool', 'int', 'float', 'str', 'seq', 'map')
YAML_TAG_PREFIX = 'tag:yaml.org,2002:'
# far above any recipe (the largest here is 5 KB, 6 levels, 300 values) and far below what costs time or memory
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_VALUES = 100_000


class PlainLoader(yaml.SafeLoader):
    """SafeLoader that builds plain data only and refuses duplicate keys."""

    # not SafeLoader's tables: a yaml.add_*constructor(..., Loader=SafeLoader) elsewhere would reach them
    yaml_multi_constructors = {}

    def refuse_tag(self, node):
        tag = node.tag.replace(YAML_TAG_PREFIX, '!!', 1)
        raise ConstructorError(
            None,
            None,
            f'tag {tag} is not allowed: option files hold plain data only '
            '(mappings, lists, strings, numbers, booleans, null)',
            node.start_mark,
        )

    def construct_mapping(self, node, deep=False):
        first_node = {}
        for key_node, _ in node.value:
            if key_node.tag == YAML_TAG_PREFIX + 'merge':  # '<<: *base' may be overridden by the keys after it
                continue
            try:
                first = first_node.setdefault(self.construct_object(key_node, deep=True), key_node)
            except TypeError:  # an unhashable key: SafeConstructor's construct_mapping names it
                continue
            if first is not key_node:
                line = first.start_mark.line + 1
                raise ConstructorError(
                    None, None, f'duplicate key {first.value!r} (first at line {line})', key_node.start_mark
                )
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # !!int on other text, or more digits than int() converts: no traceback
            raise ConstructorError(
                None, None, f'not an integer of at most {sys.get_int_max_str_digits()} digits', node.start_mark
            ) from None


PlainLoader.yaml_constructors = {
    YAML_TAG_PREFIX + tag: SafeConstructor.yaml_constructors[YAML_TAG_PREFIX + tag] for tag in PLAIN_TAGS
}
PlainLoader.yaml_constructors[YAML_TAG_PREFIX + 'int'] = PlainLoader.construct_yaml_int
PlainLoader.yaml_constructors[YAML_TAG_PREFIX + 'timestamp'] = SafeConstructor.construct_yaml_str
PlainLoader.yaml_constructors[None] = PlainLoader.refuse_tag


def _yaml_problem(err):
    """(line, column, problem) of a YAML error; line and column are None when PyYAML gives no position."""
    mark = getattr(err, 'problem_mark', None)
    problem = getattr(err, 'problem', None) or first_line(err)
    return (mark.line + 1, mark.column + 1, problem) if mark else (None, None, problem)


def _check_bounds(text, path):
    """Refuse ``text`` nested deeper than MAX_DEPTH or holding more than MAX_VALUES values with aliases expanded.

    Reads YAML's event stream (no recursion, nothing built), counting each collection's values as it closes;
    an anchor remembers its collection's count, which each alias of it adds again.
    """
    counts, anchors, opened = [0], {}, []
    for event in yaml.parse(text, Loader=PlainLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            counts.append(1)
            opened.append(event.anchor)
            if len(opened) > MAX_DEPTH:
                raise UserError(f'{path}:{event.start_mark.line + 1}: options nested deeper than {MAX_DEPTH} levels')
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            count, anchor = counts.pop(), opened.pop()
        elif isinstance(event, yaml.ScalarEvent):
            count, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            count, anchor = anchors.get(event.anchor, 1), None
        else:
            continue
        if anchor:
            anchors[anchor] = count
        counts[-1] += count
        if sum(counts) > MAX_VALUES:
            raise UserError(
                f'{path}:{event.start_mark.line + 1}: more than {MAX_VALUES} values once aliases are expanded'
            )


def load_option_file(path):
    """Parse an option file into plain data; errors name the file (and line for bad YAML).

    Raises:
        UserError: the file is missing or unreadable, over MAX_FILE_BYTES, nested deeper than
            MAX_DEPTH, holds more than MAX_VALUES values once aliases are expanded, is not YAML,
            holds a tag other than plain data's or a duplicate key, or is not a mapping.
    """
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read(MAX_FILE_BYTES + 1)
        if len(text.encode('utf-8')) > MAX_FILE_BYTES:
            raise UserError(f'{path}: over {MAX_FILE_BYTES // (1 << 20)} MB, not an option file')
        _check_bounds(text, path)
        opt = yaml.load(text, Loader=PlainLoader)
    except FileNotFoundError:
        raise UserError(f'option file not found: {path}') from None
    except yaml.YAMLError as err:
        line, column, problem = _yaml_problem(err)
        where = f'{path}:{line}:{column}' if line else str(path)
        # a refused tag or a duplicate key is valid YAML, just not a valid option file
        kind = '' if isinstance(err, ConstructorError) else 'invalid YAML: '
        raise UserError(f'{where}: {kind}{problem}') from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f'cannot read option file {path}: {err}') from None
    if not isinstance(opt, dict):
        raise UserError(f'{path}: expected a mapping of options at the top level, got {type(opt).__name__}')
    return opt


def _parse_value(text, entry):
    """A ``--force_yml`` value as plain data: YAML's reading, plus basicsr's ``none`` for null."""
    if text.lower() == 'none':
        return None
    try:
        return yaml.load(text, Loader=PlainLoader)
    except yaml.YAMLError as err:
        raise UserError(f'--force_yml {entry}: invalid value: {_yaml_problem(err)[2]}') from None


def apply_overrides(opt, entries, source):
    """Apply basicsr's ``--force_yml`` entries ``a:b:c=value`` to ``opt`` (read from ``source``), without eval.

    As in basicsr, the last key may be new but the keys leading to it must exist.

    Raises:
        UserError: an entry without '=' or key, a key before the last that is
            missing or not a mapping, or a value that is not plain YAML data.
    """
    for entry in entries:
        keys, sep, text = entry.partition('=')
        path = [k.strip() for k in keys.split(':')]
        if not sep or not all(path):
            raise UserError(f'--force_yml {entry}: expected KEY=VALUE, KEY a path like train:optim_g:lr')
        section = opt
        for depth, key in enumerate(path[:-1]):
            where = ':'.join(path[: depth + 1])
            if key not in section:
                raise UserError(f'--force_yml {entry}: {source} has no option {where}')
            section = section[key]
            if not isinstance(section, dict):
                raise UserError(f'--force_yml {entry}: {source}: {where} is {section!r}, not a mapping')
        section[path[-1]] = _parse_value(text.strip(), entry)
    return opt


def write_option_file(opt, path, header):
    """Write plain options ``opt`` (keys in order) to ``path`` under the comment line ``header``."""
    with open(path, 'w', encoding='utf-8') as f:
        f.write(f'# {header}\n')
        yaml.safe_dump(opt, f, sort_keys=False, allow_unicode=True)


def deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into ``base`` recursively, in place; a value None deletes the key.

    Args:
        base (dict[str, Any]): the options to change.
        changes (dict[str, Any]): nested changes; mappings are merged, other values replace.

    Returns:
        dict[str, Any]: ``base``.
    """
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base

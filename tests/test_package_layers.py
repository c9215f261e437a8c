"""Every package of cast_mm imports only the layers below its own.

The layers, lowest first (a package may import any package of a lower layer, none of its own
layer or above; every import counts, also those inside functions):

====  ==============================================  ==========================================
 0    ``utils``, ``version``                           nothing of cast_mm
 1    ``ops``                                          plain torch: no OpenMMLab package either
 1    ``registry``                                     the registry scope
 1    ``checkpoints``                                  reading, recognising, converting and
                                                       downloading checkpoints; the model index
 2    ``superpixels``                                  SEEDS, SLIC, presets, quality, sources
 3    ``models``                                       backbone, layers, heads, wrappers
 4    ``datasets``, ``evaluation``,                    data, metrics, drawing: side by side,
      ``visualization``                                never each other
 5    ``apis``                                         entry points for users
 6    ``engine``, ``compat``                           runner parts; the compatibility measures
 7    ``env``, the package's ``__init__``              setup on import; what ``import cast_mm``
                                                       registers
====  ==============================================  ==========================================

Nothing in cast_mm imports a module of layer 7: ``import cast_mm`` does not apply
:func:`cast_mm.setup_env`.

Above the package, like the tools: ``cast_analysis`` (``tools/analysis/cast_analysis``), the
analysis tools' library. It may import any package of cast_mm; nothing in cast_mm imports it,
and it imports no tool (tools never import each other, and the library is not a tool).
"""
import ast
import os
import os.path as osp
from typing import Iterator

import pytest
from helpers import REPO

import cast_mm

PACKAGE = osp.dirname(cast_mm.__file__)
TOOLS = osp.join(REPO, 'tools')
#: The analysis tools' library: a package beside them, imported as ``cast_analysis``.
LIBRARY = osp.join(TOOLS, 'analysis', 'cast_analysis')

#: Layer of every package (folder) and top-level module of cast_mm; ``__init__`` is the
#: package's own ``cast_mm/__init__.py``.
LAYERS = {
    'utils': 0, 'version': 0,
    'ops': 1, 'registry': 1, 'checkpoints': 1,
    'superpixels': 2,
    'models': 3,
    'datasets': 4, 'evaluation': 4, 'visualization': 4,
    'apis': 5,
    'engine': 6, 'compat': 6,
    'env': 7, '__init__': 7,
}
#: Third-party packages a layer may not import.
FORBIDDEN_THIRD_PARTY = {
    'ops': ('mmengine', 'mmcv', 'mmseg', 'mmpretrain'),
    'superpixels': ('mmcv', 'mmseg', 'mmpretrain'),
}
#: Packages no file of cast_mm imports: the explorer's (``requirements/demo.txt``, installed
#: with ``--demo`` only), which belong to ``tools/hierarchy_explorer.py``.
TOOLS_ONLY = ('gradio', 'playwright')


def allowed(layer_of: str, target: str) -> bool:
    """The arrow ``layer_of -> target`` of the table: only downwards."""
    return LAYERS[target] < LAYERS[layer_of]


def part_of(path: str) -> str:
    """The package or top-level module a file of cast_mm belongs to."""
    rel = osp.relpath(path, PACKAGE)
    head = rel.split(os.sep)[0]
    return head[:-3] if head.endswith('.py') else head


def imported_modules(path: str, root: str = osp.dirname(PACKAGE)) -> Iterator[str]:
    """Absolute names of the modules a file imports anywhere in it (relative imports
    resolved against ``root``, the folder that holds its top-level package;
    ``importlib.import_module('cast_mm...')`` calls included)."""
    package = osp.relpath(osp.dirname(path), root).replace(os.sep, '.')
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit('.', node.level - 1)[0] if node.level else ''
            module = '.'.join(part for part in (base, node.module) if part)
            yield module
            if node.module is None:  # from . import x: x may be a module
                yield from (f'{module}.{alias.name}' for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, 'attr', None) == 'import_module'
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            yield node.args[0].value


def python_files(folder: str) -> Iterator[str]:
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(root, name)


def cast_mm_files() -> Iterator[str]:
    return python_files(PACKAGE)


def tool_modules() -> set:
    """The module names the tools run as (their file names), the library's own left out."""
    return {osp.splitext(osp.basename(path))[0] for path in python_files(TOOLS)
            if not path.startswith(LIBRARY + os.sep)}


def target_of(module: str) -> str:
    """The package or top-level module of cast_mm an import of ``module`` loads."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def test_the_table_names_every_package_and_module():
    found = {part_of(path) for path in cast_mm_files()}
    assert found - set(LAYERS) == set(), 'add the new packages to LAYERS (and the docstring)'


@pytest.mark.parametrize('part', sorted(LAYERS))
def test_imports_point_downwards_only(part):
    wrong = []
    for path in cast_mm_files():
        if part_of(path) != part:
            continue
        for module in imported_modules(path):
            where = osp.relpath(path, REPO)
            if module == 'cast_mm' or module.startswith('cast_mm.'):
                target = target_of(module)
                if target != part and (target not in LAYERS or not allowed(part, target)):
                    wrong.append(f'{where} imports {module} (layer {part} -> {target})')
            elif module.split('.')[0] in FORBIDDEN_THIRD_PARTY.get(part, ()):
                wrong.append(f'{where} imports {module} ({part} may not)')
    assert not wrong, wrong


def test_the_check_sees_function_level_and_relative_imports(tmp_path):
    """The walk finds what a layer check must catch (so the test above can fail)."""
    path = osp.join(PACKAGE, 'models', 'backbones', 'cast.py')
    found = set(imported_modules(path))
    assert 'cast_mm.ops' in found and 'cast_mm.checkpoints' in found
    sample = tmp_path / 'sample.py'
    sample.write_text('def f():\n    from cast_mm.apis import x\n'
                      "    importlib.import_module('cast_mm.engine')\n")
    assert {'cast_mm.apis', 'cast_mm.engine'} <= set(imported_modules(str(sample)))
    assert not allowed('models', 'apis') and allowed('apis', 'models')
    assert not allowed('datasets', 'evaluation') and not allowed('engine', '__init__')


def test_nothing_in_cast_mm_imports_the_explorer_packages(tmp_path):
    wrong = [f'{osp.relpath(path, REPO)} imports {module}' for path in cast_mm_files()
             for module in imported_modules(path) if module.split('.')[0] in TOOLS_ONLY]
    assert not wrong, wrong
    assert 'gradio' in set(imported_modules(osp.join(TOOLS, 'hierarchy_explorer.py')))
    sample = tmp_path / 'sample.py'
    sample.write_text('def page():\n    import gradio.components as gc\n')
    assert 'gradio.components' in set(imported_modules(str(sample)))


def test_nothing_in_cast_mm_imports_the_analysis_library():
    wrong = [f'{osp.relpath(path, REPO)} imports {module}' for path in cast_mm_files()
             for module in imported_modules(path) if module.split('.')[0] == 'cast_analysis']
    assert not wrong, wrong


def test_the_analysis_library_imports_cast_mm_and_no_tool():
    files = list(python_files(LIBRARY))
    assert osp.join(LIBRARY, 'benchmark.py') in files
    tools = tool_modules()
    assert {'benchmark', 'hierarchy_explorer', 'train'} <= tools
    imports, wrong = set(), []
    for path in files:
        for module in imported_modules(path, osp.dirname(LIBRARY)):
            imports.add(module)
            if module.split('.')[0] in tools:
                wrong.append(f'{osp.relpath(path, REPO)} imports the tool {module}')
    assert not wrong, wrong
    # Its relative imports resolve inside it, and it builds on the package.
    assert 'cast_analysis.models' in imports and 'cast_mm.models.execution_profile' in imports

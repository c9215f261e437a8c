"""cast_mm's compatibility measures with its upstream packages, all in one table.

``import cast_mm`` registers cast_mm's modules (its registry scope, its configs' package name,
MMEngine's loader of the official weight URLs) and changes nothing else in the process. What
would change how other packages behave is applied by one call, :func:`setup_env`, which is
idempotent and documented:

* ``tools/train.py``, ``tools/test.py`` and the other tools call it first;
* every cast_mm config lists ``custom_imports = dict(imports=['cast_mm.env'])``
  (``configs/_base_/cast_env.py``), so MMEngine calls it when such a config is read, by any
  tool: mmseg's ``init_model``, mmpretrain's ``get_model(config)``, their ``tools/train.py``;
* in Python, call ``cast_mm.setup_env()`` yourself, e.g. before loading an official CAST file
  or an MMEngine checkpoint by path into a model built without a cast_mm config.

Each measure names the upstream behaviour it works around and the test that fails once it is
no longer needed (then delete the measure). Measures scoped to cast_mm's own files and calls
(``applied_by='cast_mm'``) are always in effect and change nothing outside cast_mm.
"""
from typing import Callable, NamedTuple, Optional

from cast_mm.checkpoints import register_local_file_loader
from cast_mm.checkpoints.reading import pickle_history_buffers_without_functions
from cast_mm.utils import editable_install


class Measure(NamedTuple):
    """One compatibility measure.

    Attributes:
        name: what it does.
        works_around: the upstream behaviour (and version) that makes it necessary.
        applied_by: ``'setup_env'`` (it changes another package's behaviour) or ``'cast_mm'``
            (scoped to cast_mm's own files and calls, always in effect).
        test: the test that fails once the measure is no longer needed.
        apply: what :func:`setup_env` calls (None for scoped measures).
    """
    name: str
    works_around: str
    applied_by: str
    test: str
    apply: Optional[Callable[[], object]] = None


#: Every compatibility measure of cast_mm.
MEASURES = (
    Measure(
        'torch safe loading of MMEngine checkpoint objects, for cast_mm reads',
        'torch >= 2.6 unpickles with weights_only=True and refuses the HistoryBuffer, '
        'ConfigDict and numpy objects MMEngine 0.10.7 saves in checkpoints; '
        'cast_mm.checkpoints.read_checkpoint allows them for its own calls only',
        'cast_mm', 'tests/test_compat.py::test_safe_loading_refuses_mmengine_objects_by_default'),
    Measure(
        'HistoryBuffer pickles its data, not the class registry of statistics functions',
        'mmengine 0.10.7 HistoryBuffer.__getstate__ pickles functions, which torch >= 2.6 '
        'safe loading refuses (resume and load_from of every checkpoint written since)',
        'setup_env',
        'tests/test_compat.py::test_the_history_buffer_pickling_workaround_is_still_needed',
        pickle_history_buffers_without_functions),
    Measure(
        "MMEngine's loader of local files reads safely and converts official CAST files",
        'mmengine 0.10.7 load_from_local calls torch.load without weights_only, which fails '
        'under torch >= 2.6 on MMEngine checkpoints and on the official CAST files '
        '(argparse.Namespace), and converts nothing',
        'setup_env',
        'tests/test_compat.py::test_mmengine_cannot_load_its_own_checkpoints_safely',
        register_local_file_loader),
    Measure(
        "config inheritance ('cast_mm::...') finds an editable install of cast_mm",
        'mmengine 0.10.7 get_installed_path answers with site-packages for a PEP 660 editable '
        'install, which holds no cast_mm folder',
        'setup_env',
        'tests/test_compat.py::test_the_editable_install_workaround_is_still_needed',
        editable_install.apply),
    Measure(
        "mmpretrain's model hub knows cast_mm's model names (added by import cast_mm, as "
        'modules are registered)',
        'mmpretrain 1.2.0 ModelHub lists only mmpretrain\'s own index and discovers no '
        "other package's",
        'cast_mm',
        'tests/test_compat.py::test_mmpretrain_does_not_find_the_model_index_by_itself'),
    Measure(
        'names unknown to the cast_mm scope are looked up in the surrounding task scope',
        "mmengine 0.10.7 builds configs inherited as 'cast_mm::...' in the cast_mm scope, "
        "where mmseg's and mmpretrain's names are unknown (cast_mm.registry.CastRegistry, "
        "cast_mm's registries only)",
        'cast_mm', 'tests/test_compat.py::test_the_surrounding_scope_lookup_is_still_needed'),
)


def setup_env() -> None:
    """Apply every compatibility measure that changes another package's behaviour.

    Idempotent: a second call changes nothing. See :data:`MEASURES` for what is applied and
    why; ``import cast_mm`` applies none of them.
    """
    for measure in MEASURES:
        if measure.apply is not None:
            measure.apply()

"""Importing this module calls :func:`cast_mm.setup_env` (once per process).

It is what configs name to have MMEngine apply cast_mm's compatibility measures when the config
is read: ``custom_imports = dict(imports=['cast_mm.env'], allow_failed_imports=False)``
(``configs/_base_/cast_env.py``, inherited by every cast_mm config). Nothing in cast_mm imports
it; see :mod:`cast_mm.compat` for the measures.
"""
from cast_mm.compat import setup_env

setup_env()

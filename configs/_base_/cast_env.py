# Reading a config that inherits this file applies cast_mm.setup_env() (cast_mm/compat.py):
# safe loading and official-file conversion of local checkpoints, the model index, the
# editable-install config lookup. ``import cast_mm`` alone changes none of these.
custom_imports = dict(imports=['cast_mm.env'], allow_failed_imports=False)

# CAST-B, MoCo-v3 ImageNet-1k convention (classification mode, sin-cos positions), as used by
# the official hierarchy notebooks. A bare backbone is enough for
# tools/visualize_hierarchy.py; checkpoints with ``backbone.*`` keys load into it.
_base_ = ['../_base_/cast_env.py']
model = dict(type='cast_mm.CAST', arch='base', mode='classification', pos_embed='sincos',
             img_size=224)
# Hierarchy extraction: ImageNet normalisation (0-255 scale), SEEDS preset of the mode.
hierarchy_cfg = dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                     superpixel_cfg=dict(preset='moco'))
visualizer = dict(type='cast_mm.HierarchyVisualizer', alpha=0.5)

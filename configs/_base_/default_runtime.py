# Runtime shared by the cast_mm segmentation configs (MMSegmentation conventions).
# MMEngine imports cast_mm when it meets a 'cast_mm.' type name; cast_env.py's custom_imports
# only applies cast_mm.setup_env().
_base_ = ['./cast_env.py']
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo on machines without CUDA. timeout (seconds): a collective
    # that waits longer for a lost peer fails, and torchrun restarts the group
    # (docs/reliability.md).
    dist_cfg=dict(backend='nccl', timeout=300),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# Every parameter of CAST + mask transformer gets a gradient, so DDP need not search for unused
# ones (the official code set find_unused_parameters=True); heads that skip the backbone's
# level fusion set it back to True.
find_unused_parameters = False
tta_model = dict(type='SegTTAModel')

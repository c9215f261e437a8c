# CAST's literal (official) computation: every fast path off (cast_mm.models.execution_profile
# lists them; the fast paths are the defaults and need nothing). A config inherits this
# fragment and merges the entry of its task into `model`:
#
#   _base_ = ['./cast-s_ade20k.py', '../_base_/literal.py']
#   model = _base_.literal_segmentation
#
# (`_base_.literal_classification` for a classifier).
literal_classification = dict(
    backbone=dict(token_pooling='literal', fused_attn=False, fps_backend='dgl'))
literal_segmentation = dict(
    backbone=literal_classification['backbone'],
    decode_head=dict(fused_attn=False, loss_by_superpixel=False),
    predict_by_segments=False)

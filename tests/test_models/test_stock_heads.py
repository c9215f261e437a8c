"""mmseg's stock decode heads, auxiliary heads and necks on CAST (cast_mm.SuperpixelEncoderDecoder).

Every decode head of mmseg's registry is either trained here (one step with its defaults: every
trained parameter gets a gradient) and run through ``mmseg.apis.inference_model``, or refused
with the reason when the segmentor is built. The registry test fails for a head in neither list.
"""
import inspect
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import TINY_ARCH, TINY_CLUSTERS, photo
from helpers.seg import CONFIGS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from cast_mm.datasets import PackSuperpixelSegInputs, SEEDSSuperpixels
from cast_mm.models.segmentors.superpixel_encoder_decoder import HEAD_PACKAGES, UNSUPPORTED_HEADS

WIDTH = TINY_ARCH['embed_dims']
#: Arguments every single-input head gets (its other arguments keep their defaults).
ONE = dict(in_channels=WIDTH, channels=16, num_classes=5)
#: Heads reading all four levels.
ALL = dict(in_channels=[WIDTH] * 4, in_index=[0, 1, 2, 3], channels=16, num_classes=5)

#: Head type -> (decode head arguments beyond its type, segmentor arguments). Arguments are the
#: head's required ones, sized down; ``backbone`` overrides go to CAST.
HEADS = {
    'UPerHead': (ALL, dict(auxiliary_head=dict(type='FCNHead', in_index=3, **ONE))),
    'SegformerHead': (ALL, {}),
    'FPNHead': (dict(ALL, in_channels=[16] * 4, feature_strides=[4, 8, 16, 32]),
                dict(neck=dict(type='FPN', in_channels=[WIDTH] * 4, out_channels=16,
                               num_outs=4))),
    'FCNHead': (ONE, {}),
    'PSPHead': (ONE, {}),
    'ASPPHead': (ONE, {}),
    'DepthwiseSeparableASPPHead': (dict(ONE, c1_in_channels=WIDTH, c1_channels=8), {}),
    'DepthwiseSeparableFCNHead': (ONE, {}),
    'PSAHead': (dict(ONE, mask_size=(3, 3)), {}),
    'DAHead': (dict(ONE, pam_channels=8), {}),
    'ANNHead': (dict(ONE, in_channels=[WIDTH] * 2, in_index=[2, 3], project_channels=8), {}),
    'APCHead': (ONE, {}),
    'CCHead': (ONE, {}),
    'DMHead': (ONE, {}),
    'DNLHead': (ONE, {}),
    'EMAHead': (dict(ONE, ema_channels=16, num_bases=8, num_stages=2), {}),
    'EncHead': (dict(ALL, num_codes=8), {}),
    'GCHead': (ONE, {}),
    'ISAHead': (dict(ONE, isa_channels=8), {}),
    'LightHamHead': (dict(ALL, in_channels=[WIDTH] * 3, in_index=[1, 2, 3], ham_channels=16,
                          ham_kwargs=dict(MD_R=4)), {}),
    # LR-ASPP pools its last input with a 49 x 49 window: maps of stride 1 at 64 pixels.
    'LRASPPHead': (dict(ONE, in_channels=[WIDTH] * 3, in_index=[1, 2, 3],
                        branch_channels=(8, 8), input_transform='multiple_select'),
                   dict(backbone=dict(out_strides=(1, 1, 1, 1)))),
    'NLHead': (ONE, {}),
    'SETRUPHead': (ONE, {}),
    # SETR-MLA concatenates its inputs: levels on one grid.
    'SETRMLAHead': (dict(ALL, channels=32, mla_channels=8),
                    dict(backbone=dict(out_strides=(16, 16, 16, 16)))),
    'STDCHead': (ONE, {}),
    'SegmenterMaskTransformerHead': (dict(in_channels=WIDTH, channels=WIDTH, num_classes=5,
                                          num_layers=1, num_heads=2, embed_dims=WIDTH), {}),
    'IterativeDecodeHead': (dict(
        num_stages=2,
        kernel_generate_head=dict(type='FCNHead', num_convs=1, concat_input=True, **ONE),
        kernel_update_head=[
            dict(type='KernelUpdateHead', num_classes=5, num_heads=2, in_channels=16,
                 out_channels=16, feedforward_channels=32, conv_kernel_size=1,
                 kernel_updator_cfg=dict(type='KernelUpdator', in_channels=16,
                                         feat_channels=16, out_channels=16,
                                         norm_cfg=dict(type='LN')))] * 2), {}),
}
#: Kept in the fast run: the pyramid head with an auxiliary head, the all-MLP head, a neck.
FAST_HEADS = ('UPerHead', 'SegformerHead', 'FPNHead')
#: mmseg's cascade heads: their forward also takes the previous head's output.
CASCADE_HEADS = ('OCRHead', 'PointHead')


def _seg_cfg(head_type: str, head: dict, extra: dict) -> dict:
    backbone = dict(type='cast_mm.CAST', arch=TINY_ARCH, mode='segmentation',
                    num_clusters=TINY_CLUSTERS, img_size=64, pool_num_heads=4,
                    mask_padding=True, **extra.get('backbone', {}))
    return dict(
        type='cast_mm.SuperpixelEncoderDecoder',
        data_preprocessor=dict(type='cast_mm.SuperpixelSegDataPreProcessor',
                               mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                               bgr_to_rgb=True, size=(64, 64), pad_val=0, seg_pad_val=255),
        backbone=backbone, decode_head=dict(head, type=head_type),
        **dict(dict(test_cfg=dict(mode='whole')),
               **{k: v for k, v in extra.items() if k != 'backbone'}))


def _build(model_cfg: dict):
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _batch(count: int = 2) -> dict:
    """Photographs with random labels through SEEDS and packing, as the pipeline gives them."""
    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for _ in range(count):
        results = dict(img=photo(64, 64), img_shape=(64, 64), ori_shape=(64, 64),
                       gt_seg_map=rng.integers(0, 5, (64, 64)).astype(np.uint8),
                       seg_fields=['gt_seg_map'])
        results = SEEDSSuperpixels(preset='seg').transform(results)
        packed = PackSuperpixelSegInputs(meta_keys=('img_shape', 'ori_shape')).transform(results)
        inputs.append(packed['inputs'])
        samples.append(packed['data_samples'])
    return dict(inputs=inputs, data_samples=samples)


def _train_step(model) -> dict:
    """One optimiser step; returns the logged losses after checking every gradient."""
    model.train()
    data = model.data_preprocessor(_batch(), True)
    loss, log_vars = model.parse_losses(model.loss(**data))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'no gradient (DDP would need find_unused_parameters): {missing}'
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    assert all(torch.isfinite(v) for v in log_vars.values())
    return log_vars


def _inference(model, image):
    from mmseg.apis import inference_model
    model.cfg = Config(dict(test_pipeline=[
        dict(type='LoadImageFromFile'), dict(type='cast_mm.SEEDSSuperpixels', preset='seg'),
        dict(type='cast_mm.PackSuperpixelSegInputs')]))
    model.eval()
    with DefaultScope.overwrite_default_scope('mmseg'):
        return inference_model(model, image)


def _registered_decode_heads():
    import mmseg.models  # noqa: F401  (registers mmseg's heads)
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    heads = {name for name, cls in MODELS.module_dict.items()
             if inspect.isclass(cls) and issubclass(cls, BaseDecodeHead)}
    return heads | set(HEAD_PACKAGES)  # MaskFormer heads are mmdet's classes


def test_every_registered_decode_head_is_trained_or_refused():
    refused = set(UNSUPPORTED_HEADS) | set(HEAD_PACKAGES) | set(CASCADE_HEADS)
    assert not set(HEADS) & refused
    assert _registered_decode_heads() == set(HEADS) | refused


@pytest.mark.parametrize('head_type', [
    pytest.param(name, marks=() if name in FAST_HEADS else pytest.mark.slow) for name in HEADS])
def test_stock_head_trains_and_infers(head_type):
    head, extra = HEADS[head_type]
    torch.manual_seed(0)
    model = _build(_seg_cfg(head_type, head, extra))
    assert model.backbone.out_type == 'feature_maps' and not model.backbone.fuse_levels
    log_vars = _train_step(model)
    assert any(key.startswith('decode.') for key in log_vars)
    assert ('aux.loss_ce' in log_vars) == ('auxiliary_head' in extra)
    image = np.random.default_rng(1).integers(0, 255, (57, 83, 3), dtype=np.uint8)
    result = _inference(model, image)
    assert result.pred_sem_seg.data.shape == (1, 57, 83)
    assert result.seg_logits.data.shape == (5, 57, 83)


@pytest.mark.parametrize('head_type', sorted(set(UNSUPPORTED_HEADS) | set(CASCADE_HEADS)
                                             | set(HEAD_PACKAGES)))
def test_heads_that_cannot_work_are_refused_with_the_reason(head_type):
    reason = UNSUPPORTED_HEADS.get(head_type, 'cascade head' if head_type in CASCADE_HEADS
                                   else f'from {HEAD_PACKAGES.get(head_type)}')
    with pytest.raises(ValueError, match=f'{head_type} cannot run on CAST') as error:
        _build(_seg_cfg(head_type, ONE, {}))
    assert reason in str(error.value)


def test_token_and_map_heads_mix():
    """cast_mm's hierarchy head decodes CASTFeatures, mmseg's FCNHead the maps, one model."""
    model = _build(_seg_cfg('cast_mm.HierarchyMLPHead', dict(in_channels=WIDTH, channels=16,
                                                             num_classes=5),
                            dict(auxiliary_head=dict(type='FCNHead', **ONE))))
    assert model.backbone.out_type == 'feature_maps' and not model.backbone.fuse_levels
    log_vars = _train_step(model)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(log_vars)


def test_slide_inference_gives_every_window_its_superpixels():
    model = _build(_seg_cfg('UPerHead', ALL, dict(
        test_cfg=dict(mode='slide', crop_size=(48, 48), stride=(32, 32))))).eval()
    image = photo(64, 80)
    slide = _inference(model, image)
    calls = []
    original = model.superpixel_source.compute_batch
    model.superpixel_source.compute_batch = lambda images: calls.append(images.shape) or \
        original(images)
    _inference(model, image)
    assert calls == [(1, 3, 48, 48)] * 4  # 2 x 2 windows
    assert slide.seg_logits.data.shape == (5, 64, 80)


def test_feature_map_heads_need_feature_maps_out_of_cast():
    cfg = _seg_cfg('FCNHead', ONE, dict(backbone=dict(out_type='fused_tokens')))
    with pytest.raises(ValueError, match="out_type='feature_maps'"):
        _build(cfg)


def test_a_neck_needs_a_head_that_reads_feature_maps():
    cfg = _seg_cfg('cast_mm.HierarchyMLPHead', dict(in_channels=WIDTH, channels=16,
                                                    num_classes=5),
                   dict(neck=dict(type='FPN', in_channels=[WIDTH] * 4, out_channels=16,
                                  num_outs=4)))
    with pytest.raises(ValueError, match='remove model.neck'):
        _build(cfg)


@pytest.mark.slow
def test_config_inheriting_the_segmenter_recipe_takes_uperhead(tmp_path):
    """The first thing an mmseg user tries: a familiar head in place of ours."""
    from helpers.seg import make_ade20k, shrink_seg_config
    from mmengine.runner import Runner
    config = tmp_path / 'cast_uperhead.py'
    config.write_text(
        f"_base_ = [{osp.join(CONFIGS, 'cast-s_ade20k.py')!r}]\n"
        "model = dict(decode_head=dict(_delete_=True, type='UPerHead', in_channels=[384] * 4,\n"
        "                              in_index=[0, 1, 2, 3], channels=128, num_classes=150))\n")
    cfg = shrink_seg_config(Config.fromfile(str(config)), str(tmp_path / 'work'),
                            make_ade20k(str(tmp_path / 'ade')))
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2 and runner.model.backbone.out_type == 'feature_maps'


@pytest.mark.slow
def test_test_time_augmentation_with_uperhead(tmp_path):
    """What ``tools/test.py --tta`` runs: mmseg's SegTTAModel over scales and flips."""
    from helpers.seg import make_ade20k, shrink_seg_config
    from mmengine.runner import Runner
    cfg = shrink_seg_config(Config.fromfile(osp.join(CONFIGS, 'cast-s_upernet_ade20k.py')),
                            str(tmp_path / 'work'), make_ade20k(str(tmp_path / 'ade')))
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.test_dataloader.dataset.pipeline[1].transforms[0] = [
        dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (0.75, 1.0)]
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    metrics = Runner.from_cfg(cfg).test()
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}

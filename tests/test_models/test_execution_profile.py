"""The execution profile: every fast / literal choice is named once, in
cast_mm.models.execution_profile, and everything else reads it from there."""
import inspect
import logging
import os.path as osp

import pytest
import torch
from helpers import REPO
from mmengine.config import Config

from cast_mm.models import CAST, SuperpixelEncoderDecoder, SuperpixelMaskTransformerHead
from cast_mm.models.execution_profile import COMPONENTS, FAST, LITERAL, cfg_options, model_cfg
from cast_mm.models.heads.mask_transformer import SuperpixelMaskTransformer
from cast_mm.models.heads.segment_decode_head import SegmentDecodeHead
from cast_mm.models.layers import Attention, GraphPooling, TransformerBlock
from cast_mm.ops.farthest_point_sampling import native_implementation


def defaults(cls):
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()}


def test_fast_and_literal_profiles_name_the_same_choices():
    assert tuple(FAST) == tuple(LITERAL) == COMPONENTS
    for component in COMPONENTS:
        assert set(FAST[component]) == set(LITERAL[component]), component
        assert all(FAST[component][key] != LITERAL[component][key]
                   for key in FAST[component]), component


def test_every_constructor_defaults_to_the_fast_profile():
    owners = dict(backbone=[CAST],
                  decoder=[SuperpixelMaskTransformer, SuperpixelMaskTransformerHead],
                  decode_head=[SegmentDecodeHead],  # its subclasses pass it on (kwargs)
                  segmentor=[SuperpixelEncoderDecoder])
    for component, classes in owners.items():
        for cls in classes:
            found = defaults(cls)
            assert {key: found[key] for key in FAST[component]} == FAST[component], cls
    # The layers CAST builds default to the backbone's choices.
    backbone = FAST['backbone']
    for layer in (Attention, TransformerBlock, GraphPooling):
        assert defaults(layer)['fused_attn'] is backbone['fused_attn']
    assert defaults(GraphPooling)['fps_backend'] == backbone['fps_backend']


def test_the_literal_config_fragment_is_the_literal_profile(tmp_path):
    fragment = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'literal.py'))
    assert fragment.literal_classification.to_dict() == model_cfg('literal', 'classification')
    assert fragment.literal_segmentation.to_dict() == model_cfg('literal', 'segmentation')
    # As a user inherits it: the task's entry merged into a shipped config's model.
    config = tmp_path / 'literal_seg.py'
    config.write_text(f"_base_ = ['{REPO}/configs/cast/cast-s_ade20k.py', "
                      f"'{REPO}/configs/_base_/literal.py']\n"
                      'model = _base_.literal_segmentation\n')
    cfg = Config.fromfile(str(config))
    for key, value in cfg_options('literal', 'segmentation').items():
        node = cfg
        for part in key.split('.'):
            node = node[part]
        assert node == value, key
    assert cfg.model.decode_head.num_classes == 150  # merged, not replaced


def test_cfg_options_cover_each_task():
    cls = cfg_options('literal', 'cls')
    assert cls == {f'model.backbone.{k}': v for k, v in LITERAL['backbone'].items()}
    seg = cfg_options('literal', 'segmentation')
    assert seg['model.decode_head.fused_attn'] is False
    assert seg['model.decode_head.loss_by_superpixel'] is False
    assert seg['model.predict_by_segments'] is False
    assert len(seg) == sum(len(choices) for choices in LITERAL.values())
    assert cfg_options('fast', 'seg')['model.backbone.fps_backend'] == 'native'
    with pytest.raises(ValueError, match='unknown execution profile'):
        cfg_options('quick', 'cls')
    with pytest.raises(ValueError, match="task must be 'classification' or 'segmentation'"):
        cfg_options('fast', 'detection')


class Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.parametrize('profile,expected', [
    ('fast', 'fast profile;'), ('literal', 'literal profile (the official computation);'),
    ({'model.backbone.fused_attn': False},
     "fast profile except backbone.fused_attn=False;")])
def test_building_a_model_logs_one_short_line_naming_its_profile(profile, expected, tmp_path):
    from helpers.seg import CONFIGS, shrink_seg_config
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = shrink_seg_config(Config.fromfile(osp.join(CONFIGS, 'cast-s_ade20k.py')),
                            str(tmp_path))
    cfg.merge_from_dict(profile if isinstance(profile, dict) else
                        cfg_options(profile, 'segmentation'))
    logger = MMLogger.get_current_instance()
    records = Records()
    logger.addHandler(records)
    try:
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = MODELS.build(cfg.model)
        built = [m for m in records.messages if m.startswith('cast_mm execution')]
        assert len(built) == 1
        line = built[0]
        assert line.startswith(f'cast_mm execution of SuperpixelEncoderDecoder: {expected} '
                               'superpixels from the pipeline'), line
        assert len(line) < 150 or isinstance(profile, dict), line  # plus the switches named
        # Native FPS resolves by device: one line per device kind, at the first forward.
        images = torch.randn(1, 3, 64, 64)
        labels = torch.arange(64).view(1, 8, 8).repeat_interleave(8, 1).repeat_interleave(8, 2)
        model.backbone(images, labels)
        model.backbone(images, labels)
        on_cpu = [m for m in records.messages if m.startswith('cast_mm execution on cpu')]
        if model.backbone.execution['fps_backend'] == 'native':
            assert on_cpu == [f"cast_mm execution on cpu: FPS (native): "
                              f"{native_implementation('cpu')}"]
        else:
            assert on_cpu == []  # DGL, the same on every device
    finally:
        logger.removeHandler(records)

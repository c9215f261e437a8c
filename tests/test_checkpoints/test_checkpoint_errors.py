"""Checkpoints from elsewhere give a clear error naming the file, and run nothing, wherever a
checkpoint enters: ``mmseg.apis.init_model``, ``load_from``, ``resume``, ``init_cfg``."""
import os
import os.path as osp

import pytest
import torch
from helpers import REPO, load_config
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmseg.apis import init_model

import cast_mm  # noqa: F401
from cast_mm.checkpoints import (CorruptCheckpointError, ForeignCheckpointError,
                                 UnsafeCheckpointError, checkpoint_problem, describe_state_dict,
                                 read_checkpoint)
from cast_mm.registry import MODELS

CONFIG = osp.join(REPO, 'configs', 'cast', 'cast-s_demo.py')


class _RunsCode:
    """Unpickling this touches a file: a stand-in for a checkpoint that runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def seg_config(case: dict) -> Config:
    """The demo segmentation config at the size of a fixture case (learned positions)."""
    cfg = load_config(CONFIG)
    official = case['config']
    cfg.model.backbone.update(
        arch=dict(embed_dims=official['embed_dim'], depths=official['depth'],
                  num_heads=official['num_heads']),
        num_clusters=[24, 12, 6, 3], img_size=official['img_size'], init_cfg=None)
    cfg.model.decode_head.update(in_channels=official['embed_dim'],
                                 channels=official['embed_dim'], num_heads=4)
    return cfg


def segmenter_vit_checkpoint() -> dict:
    """An mmseg Segmenter ViT-S-style checkpoint (tiny), as mmseg's model zoo stores it."""
    from mmseg.models.backbones import VisionTransformer
    vit = VisionTransformer(img_size=(32, 32), patch_size=16, embed_dims=48, num_layers=1,
                            num_heads=2)
    state = {f'backbone.{k}': v for k, v in vit.state_dict().items()}
    state['decode_head.cls_emb'] = torch.zeros(1, 150, 48)
    return dict(state_dict=state, meta=dict(dataset_meta=dict(classes=('a', ))))


@pytest.fixture
def files(tmp_path, public_fixture):
    case = public_fixture['cases']['segmenter_seg']
    model = MODELS.build(seg_config(case).model)
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 3])
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_RunsCode(tmp_path / 'ran')), evil)
    vit = tmp_path / 'segmenter_vit-s.pth'
    torch.save(segmenter_vit_checkpoint(), vit)
    wrong = tmp_path / 'checkpoint_0099.pth.tar'  # official MoCo-v3: sin-cos, classification
    torch.save(public_fixture['cases']['moco_cls']['checkpoint'], wrong)
    return dict(case=case, good=str(good), truncated=str(truncated), evil=str(evil),
                vit=str(vit), wrong=str(wrong), marker=tmp_path / 'ran')


UNREADABLE = [('truncated', CorruptCheckpointError, 'truncated or corrupt'),
              ('evil', UnsafeCheckpointError, 'was not loaded')]
FOREIGN = [('vit', 'VisionTransformer'), ('wrong', 'position embedding')]


def test_read_checkpoint_and_checkpoint_problem(files):
    assert checkpoint_problem(files['good']) is None
    for name, error, message in UNREADABLE:
        with pytest.raises(error, match=message):
            read_checkpoint(files[name])
        assert files[name] in checkpoint_problem(files[name])
    assert 'does not exist' in checkpoint_problem(files['good'] + '.missing')
    assert not files['marker'].exists()
    assert describe_state_dict(read_checkpoint(files['vit'])['state_dict']).startswith(
        'an MMSegmentation VisionTransformer')


@pytest.mark.parametrize('name,error,message', UNREADABLE)
def test_unreadable_files_at_every_entry_point(files, tmp_path, name, error, message):
    cfg = seg_config(files['case'])
    path = files[name]
    with pytest.raises(error, match=message) as info:
        init_model(cfg, path, device='cpu')
    assert path in str(info.value)
    for resume in (False, True):  # load_from, then --resume with it
        runner = Runner(model=cfg.model, work_dir=str(tmp_path / f'work{resume}'),
                        load_from=path, resume=resume, default_scope='cast_mm')
        with pytest.raises(error, match=message):
            runner.load_or_resume()
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    with pytest.raises(error, match=message):
        model.init_weights()
    assert not files['marker'].exists()


@pytest.mark.parametrize('name,message', FOREIGN)
def test_foreign_weights_are_refused_by_name(files, tmp_path, name, message):
    cfg = seg_config(files['case'])
    path = files[name]
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    runner = Runner(model=model, work_dir=str(tmp_path / 'work'), load_from=path,
                    default_scope='cast_mm')
    with pytest.raises(ForeignCheckpointError, match=message) as info:
        runner.load_or_resume()
    assert f'checkpoint {path}' in str(info.value)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    with pytest.raises(ForeignCheckpointError, match=message):
        model.init_weights()
    # A checkpoint of the model itself passes the check.
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    runner = Runner(model=model, work_dir=str(tmp_path / 'ok'), load_from=files['good'],
                    default_scope='cast_mm')
    runner.load_or_resume()


def test_official_deit_weights_pass_the_check_of_a_segmentation_model(public_fixture, tmp_path):
    """The official ADE20K / Pascal Context start: DeiT classification weights, no fusion."""
    case = public_fixture['cases']['deit_cls']
    path = tmp_path / 'best_checkpoint.pth'
    torch.save(case['checkpoint'], path)
    cfg = seg_config(case)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(path),
                                       prefix='backbone.')
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    assert torch.equal(model.backbone.cls_token, case['checkpoint']['model']['cls_token'])


def test_init_model_refuses_a_segmenter_vit_checkpoint(files):
    with pytest.raises(ForeignCheckpointError, match='VisionTransformer'):
        init_model(seg_config(files['case']), files['vit'], device='cpu')


def test_the_cast_weights_check_honours_strict_false():
    from helpers import tiny_cast
    model = tiny_cast()
    state = model.state_dict()
    partial = {k: v for k, v in state.items() if not k.startswith('pools.')}
    with pytest.raises(ForeignCheckpointError, match='model weights are not in the file'):
        model.load_state_dict(partial)
    result = model.load_state_dict(partial, strict=False)  # as torch allows missing keys
    assert result.missing_keys and all(k.startswith('pools.') for k in result.missing_keys)
    # Loaded as a part of a larger model (as MMEngine's load_from and init_cfg do, non-strict).
    wrapper = torch.nn.Module()
    wrapper.backbone = model
    wrapper.load_state_dict({f'backbone.{k}': v for k, v in partial.items()}, strict=False)
    # A file without a single CAST weight, and weights of another shape, are refused either way
    # (torch refuses other shapes too).
    for strict in (True, False):
        with pytest.raises(ForeignCheckpointError, match='none of its 1 tensors'):
            model.load_state_dict({'head.weight': torch.zeros(2)}, strict=strict)
        wrong = dict(state, cls_token=torch.zeros(1, 1, 7))
        with pytest.raises(ForeignCheckpointError, match=r'cls_token has shape \(1, 1, 7\)'):
            model.load_state_dict(wrong, strict=strict)

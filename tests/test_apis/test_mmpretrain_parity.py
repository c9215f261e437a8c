"""Official parity through the mmpretrain path: uint8 images -> packing -> data preprocessor ->
classifier -> logits, with converted official DeiT and MoCo-v3 checkpoints (fixture cases
``deit_cls`` and ``moco_cls``, superpixels as given in the fixture)."""
import os.path as osp

import pytest
import torch
from helpers import REPO
from mmengine.config import Config
from mmengine.dataset import default_collate, pseudo_collate

import cast_mm  # noqa: F401
from cast_analysis.parity import DEFAULT_RTOL
from cast_mm.checkpoints import convert_official_checkpoint
from cast_mm.datasets.transforms import PackSuperpixelClsInputs
from cast_mm.registry import MODELS

CONFIGS = dict(
    deit_cls='cast-s_8xb128_in1k.py',
    moco_cls='cast-s_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py',
)

pytestmark = pytest.mark.usefixtures('mmpretrain_scope')


def fixture_classifier(case: dict, config: str):
    """The config's classifier, shrunk to the fixture's architecture, with converted weights."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cast', config))
    official = case['config']
    cfg.model.backbone.update(
        arch=dict(embed_dims=official['embed_dim'], depths=official['depth'],
                  num_heads=official['num_heads'], mlp_ratio=official['mlp_ratio']),
        num_clusters=official['num_clusters'], img_size=official['img_size'], init_cfg=None)
    cfg.model.head.update(num_classes=official['num_classes'], in_channels=official['embed_dim'])
    cfg.model.data_preprocessor = cfg.data_preprocessor
    model = MODELS.build(cfg.model)
    converted = convert_official_checkpoint(case['checkpoint'])
    model.load_state_dict(converted.state_dict(), strict=True)
    return model.eval()


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_fixture_case_end_to_end(public_fixture, name):
    case = public_fixture['cases'][name]
    model = fixture_classifier(case, CONFIGS[name])
    # ImageNet mean / std of the config are the fixture's, in 0..255 units
    assert torch.allclose(model.data_preprocessor.mean.flatten() / 255,
                          torch.tensor(public_fixture['image_mean']))
    assert torch.allclose(model.data_preprocessor.std.flatten() / 255,
                          torch.tensor(public_fixture['image_std']))
    pack = PackSuperpixelClsInputs()
    # the pipeline loads BGR images; the preprocessor turns them back to RGB (to_rgb=True)
    samples = [pack(dict(img=img.permute(1, 2, 0).flip(-1).numpy(), superpixels=sp.numpy()))
               for img, sp in zip(case['images_uint8'], case['superpixels'])]
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate(samples), False)
        logits = model(**data, mode='tensor')
        feats = model.backbone.forward_features(
            data['inputs'], torch.stack([s.superpixels for s in data['data_samples']]))
        predictions = model(**data, mode='predict')
    ref = case['outputs']
    tolerance = DEFAULT_RTOL * ref['logits'].abs().max()
    assert (logits - ref['logits']).abs().max() <= tolerance
    for k, sampled in enumerate(feats.sampled_inds):
        assert torch.equal(sampled, ref['pools'][f'pool{k + 1}']['sampled_inds']), k
    if 'cls_feature' in ref:
        cls_tol = DEFAULT_RTOL * ref['cls_feature'].abs().max()
        assert (feats.cls_feature - ref['cls_feature']).abs().max() <= cls_tol
    # predict mode gives the softmax of the same logits
    scores = torch.stack([p.pred_score for p in predictions])
    assert torch.allclose(scores, ref['logits'].softmax(-1), atol=1e-5)


@pytest.mark.parametrize('config', ['cast-s_mocov3-100e-pre_8xb128-linear-probe-90e_in1k.py',
                                    'cast-s_mocov3-100e_8xb32_in1k.py'])
def test_mocov3_configs_start_from_a_converted_official_checkpoint(public_fixture, tmp_path,
                                                                   config):
    case = public_fixture['cases']['moco_cls']
    converted = convert_official_checkpoint(case['checkpoint'])
    torch.save(converted.to_mmengine(), tmp_path / 'cast_moco.pth')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cast', config))
    official = case['config']
    cfg.model.backbone.update(
        arch=dict(embed_dims=official['embed_dim'], depths=official['depth'],
                  num_heads=official['num_heads']),
        num_clusters=official['num_clusters'], img_size=official['img_size'],
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'cast_moco.pth'),
                      prefix='backbone.'))
    moco = cfg.model.type.endswith('MoCoV3')
    if moco:
        cfg.model.neck.update(in_channels=official['embed_dim'], hid_channels=64)
        cfg.model.head.predictor.update(hid_channels=64)
    else:
        cfg.model.head.update(num_classes=3, in_channels=official['embed_dim'])
    model = MODELS.build(cfg.model)
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, converted.backbone[key]), key
    if not moco:
        return
    # MoCo-v3: the momentum encoder starts from the (converted) query encoder at the first step
    images = list(case['images_uint8'].flip(1))  # RGB -> BGR, as loaded by the pipeline
    samples = [PackSuperpixelClsInputs()(dict(img=[img.permute(1, 2, 0).numpy()] * 2,
                                              superpixels=[sp.numpy()] * 2))
               for img, sp in zip(images, case['superpixels'])]
    data = model.data_preprocessor(default_collate(samples), True)
    with torch.no_grad():
        assert torch.isfinite(model(**data, mode='loss')['loss'])
    momentum_backbone = model.momentum_encoder.module[0]
    for name, param in model.backbone.named_parameters():
        assert torch.equal(momentum_backbone.get_parameter(name), param), name


def test_mocov3_config_loads_a_converted_pretraining_checkpoint(public_fixture):
    """An official MoCo-v3 file (projector MLP as the encoder head, plus a predictor) fills the
    config's encoder, projector and predictor; only the momentum encoder is left, which copies
    the encoder at the first step."""
    case = public_fixture['cases']['moco_cls']
    dims, hidden, out = case['config']['embed_dim'], 32, 16
    state = {k: v for k, v in case['checkpoint']['state_dict'].items()
             if k.startswith('module.base_encoder.') and '.head.' not in k}

    def mlp(prefix, sizes):  # official nn.Sequential(Linear, BN, ReLU, ..., Linear, BN)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            state[f'{prefix}{3 * i}.weight'] = torch.randn(n_out, n_in)
            bn = {'running_mean': torch.randn(n_out), 'running_var': torch.rand(n_out),
                  'num_batches_tracked': torch.tensor(7)}
            if i < len(sizes) - 2:  # the last BN is affine-free
                bn.update(weight=torch.rand(n_out), bias=torch.randn(n_out))
            state.update((f'{prefix}{3 * i + 1}.{k}', v) for k, v in bn.items())

    mlp('module.base_encoder.head.', [dims, hidden, hidden, out])
    mlp('module.predictor.', [out, hidden, out])
    converted = convert_official_checkpoint(dict(state_dict=state))

    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cast', 'cast-s_mocov3-100e_8xb32_in1k.py'))
    official = case['config']
    cfg.model.backbone.update(
        arch=dict(embed_dims=dims, depths=official['depth'], num_heads=official['num_heads']),
        num_clusters=official['num_clusters'], img_size=official['img_size'])
    cfg.model.neck.update(in_channels=dims, hid_channels=hidden, out_channels=out)
    cfg.model.head.predictor.update(in_channels=out, hid_channels=hidden, out_channels=out)
    model = MODELS.build(cfg.model)
    missing, unexpected = model.load_state_dict(converted.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(k.startswith('momentum_encoder.') for k in missing)
    assert torch.equal(model.neck.fc0.weight, state['module.base_encoder.head.0.weight'])
    assert torch.equal(model.head.predictor.bn1.running_var,
                       state['module.predictor.4.running_var'])

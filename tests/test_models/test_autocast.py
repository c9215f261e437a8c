"""Mixed precision: what ``--amp`` runs (the loss under autocast, then backward) works with CAST.

MMEngine's ``AmpOptimWrapper`` needs a GPU, so these tests use CPU autocast in float16 and
bfloat16, which exercises the same code: every op of the forward either runs in half precision
or is kept in float32 on purpose, outside autocast (superpixels, float64 farthest point
sampling, token pooling, synchronised BN statistics, segment losses).
"""

import pytest
import torch
from helpers import TINY_ARCH, TINY_CLUSTERS, grid_superpixels, load_config
from helpers.seg import dataset_root_for, model_and_batch, shrink_seg_config

from cast_mm.models import CAST


def _finite_grads(module: torch.nn.Module) -> bool:
    grads = [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]
    return bool(grads) and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('token_pooling,fused_attn', [('fast', True), ('literal', False)])
@pytest.mark.parametrize('mode', ['classification', 'segmentation'])
def test_backbone_forward_and_backward_under_autocast(mode, token_pooling, fused_attn):
    torch.manual_seed(0)
    model = CAST(arch=TINY_ARCH, mode=mode, num_clusters=TINY_CLUSTERS, img_size=64,
                 token_pooling=token_pooling, fused_attn=fused_attn)
    images, superpixels = torch.randn(2, 3, 64, 64), grid_superpixels(2, 64, 64, 8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats = model.forward_features(images, superpixels)
        out = feats.fused_tokens if mode == 'segmentation' else model(images, superpixels)[0]
        loss = out.float().square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert _finite_grads(model)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('name', ['cast-s_ade20k.py', 'cast-s_hierarchy-mlp-head_ade20k.py',
                                  'cast-s_voc-finetune.py'])
def test_segmentor_loss_step_under_autocast(name, dtype, tmp_path):
    cfg = load_config(name)
    shrink_seg_config(cfg, str(tmp_path / 'work'), dataset_root_for(name, tmp_path))
    model, data = model_and_batch(cfg)
    with torch.autocast('cpu', dtype=dtype):
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    assert torch.isfinite(loss)
    assert _finite_grads(model.backbone) and _finite_grads(model.decode_head)


@pytest.mark.slow
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_slic_under_autocast_gives_the_float32_superpixels(dtype):
    """At 512 x 512 the squared centre norms pass float16's range: SLIC's distances must stay
    in float32 under autocast."""
    from skimage import data

    from cast_mm.superpixels import slic_superpixels
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].contiguous()
    expected = slic_superpixels(image, 1024, num_iterations=3)
    with torch.autocast('cpu', dtype=dtype):
        got = slic_superpixels(image, 1024, num_iterations=3)
    assert torch.equal(got, expected)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_synchronised_bn_statistics_stay_float32_under_autocast(dtype, monkeypatch, tmp_path):
    import torch.distributed as dist

    from cast_mm.models.utils import MaskedSyncBatchNorm
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/rendezvous', rank=0,
                            world_size=1)
    try:
        torch.manual_seed(0)
        x = torch.randn(64, 8) * 300 + 1000  # sums of squares far beyond float16
        synced, plain = MaskedSyncBatchNorm(8), torch.nn.BatchNorm1d(8)
        monkeypatch.setattr(MaskedSyncBatchNorm, 'synchronises', lambda self: True)
        with torch.autocast('cpu', dtype=dtype):
            out = synced(x.to(dtype))
        assert out.dtype == dtype and torch.isfinite(out).all()
        expected = plain(x.to(dtype).float())
        assert torch.allclose(out.float(), expected, atol=2e-2)
        assert torch.allclose(synced.running_var, plain.running_var, rtol=1e-4)
    finally:
        dist.destroy_process_group()

"""Synchronised batch norm of CAST: plain BN in one process, global statistics across processes."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from helpers import TINY_ARCH, TINY_CLUSTERS, cpu_training_env

from cast_mm.models import CAST
from cast_mm.models.utils import MaskedSyncBatchNorm, build_batch_norm, norm_segment_tokens


@pytest.mark.parametrize('shape,plain', [((6, 5), nn.BatchNorm1d), ((3, 5, 7), nn.BatchNorm1d),
                                         ((2, 5, 4, 3), nn.BatchNorm2d)])
def test_single_process_is_plain_batch_norm(shape, plain):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1
    ours, ref = MaskedSyncBatchNorm(5).double(), plain(5).double()
    for layer in (ours, ref):
        nn.init.uniform_(layer.weight)
        nn.init.uniform_(layer.bias)
    ref.load_state_dict(ours.state_dict())
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, out_b = ours(xa), ref(xb)
    assert torch.equal(out_a, out_b)
    out_a.pow(2).sum().backward()
    out_b.pow(2).sum().backward()
    assert torch.equal(xa.grad, xb.grad)
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    ours.eval(), ref.eval()
    assert torch.equal(ours(x), ref(x))


def test_builder_accepts_batch_norms_and_names_the_rest():
    assert type(build_batch_norm(None, 4, spatial=True)) is nn.BatchNorm2d
    assert type(build_batch_norm(dict(type='BN'), 4, spatial=False)) is nn.BatchNorm1d
    assert isinstance(build_batch_norm(dict(type='SyncBN'), 4, spatial=False), nn.SyncBatchNorm)
    layer = build_batch_norm(dict(type='cast_mm.MaskedSyncBN', momentum=0.2,
                                  requires_grad=False), 4, spatial=True)
    assert isinstance(layer, MaskedSyncBatchNorm) and layer.momentum == 0.2
    assert not any(p.requires_grad for p in layer.parameters())
    with pytest.raises(ValueError, match='BatchNorm type'):
        build_batch_norm(dict(type='LN'), 4, spatial=False)
    with pytest.raises(ValueError, match="needs a 'type'"):
        build_batch_norm(dict(momentum=0.1), 4, spatial=False)
    with pytest.raises(ValueError, match='(?i)(not registered|BatchNorm type)'):
        build_batch_norm(dict(type='NoSuchNorm'), 4, spatial=False)


def test_backbone_state_dict_keys_do_not_depend_on_the_norm():
    keys = {}
    for kind in ('BN', 'SyncBN', 'cast_mm.MaskedSyncBN'):
        model = CAST(arch=TINY_ARCH, mode='segmentation', num_clusters=TINY_CLUSTERS,
                     img_size=64, norm_cfg=dict(type=kind))
        keys[kind] = list(model.state_dict())
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert len(norms) == 5  # four in the stem, one in the level fusion
    assert keys['BN'] == keys['SyncBN'] == keys['cast_mm.MaskedSyncBN']


def test_padded_token_slots_stay_out_of_the_statistics():
    torch.manual_seed(0)
    tokens = torch.randn(2, 5, 3)
    padding = torch.tensor([[False, False, True, True, True], [False, False, False, False, True]])
    tokens[padding] = 1e3
    bn = MaskedSyncBatchNorm(3)
    out = norm_segment_tokens(bn, tokens, padding)
    assert torch.allclose(bn.running_mean, 0.1 * tokens[~padding].mean(0))
    assert torch.equal(out[padding], torch.zeros_like(out[padding]))


WORKER = textwrap.dedent('''
    import json, sys
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from helpers import TINY_ARCH, TINY_CLUSTERS, grid_superpixels
    from cast_mm.models import CAST
    from cast_mm.models.utils import MaskedSyncBatchNorm

    rank, world, out_dir = int(sys.argv[1]), 2, sys.argv[2]
    dist.init_process_group('gloo', init_method='file://' + out_dir + '/rendezvous',
                            rank=rank, world_size=world)
    torch.manual_seed(0)
    result = {}
    # A bare layer: rank r holds rows r::2 of one batch (3 and 2 rows of a 5-row batch).
    x = torch.randn(5, 4, dtype=torch.float64) * torch.arange(1., 5.) + 2.
    weight = torch.randn(5, 4, dtype=torch.float64)
    bn = MaskedSyncBatchNorm(4).double()
    mine = x[rank::2].clone().requires_grad_()
    (bn(mine) * weight[rank::2]).sum().backward()
    result['layer'] = dict(running_mean=bn.running_mean.tolist(),
                           running_var=bn.running_var.tolist(), input_grad=mine.grad.tolist(),
                           weight_grad=bn.weight.grad.tolist())
    # The backbone: different images on each rank, one training step, with either norm.
    for norm in ('cast_mm.MaskedSyncBN', 'BN'):
        model = CAST(arch=TINY_ARCH, mode='segmentation', num_clusters=TINY_CLUSTERS,
                     img_size=64, norm_cfg=dict(type=norm))
        model.train()
        torch.manual_seed(1 + rank)
        images = torch.randn(1, 3, 64, 64) * (1 + rank)
        feats = model.forward_features(images, grid_superpixels(1, 64, 64))
        feats.fused_tokens.sum().backward()
        result[norm] = {name: buf.tolist() for name, buf in model.named_buffers()
                        if 'running_mean' in name}
    with open(out_dir + '/rank%d.json' % rank, 'w') as f:
        json.dump(result, f)
    dist.destroy_process_group()
''')


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    """One training step in each of 2 gloo processes (CPU), their results per rank."""
    out = tmp_path_factory.mktemp('two_ranks')
    script = out / 'worker.py'
    script.write_text(WORKER)
    env = cpu_training_env()
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for rank in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        assert 'Warning' not in err, err[-3000:]  # e.g. a deprecated collective
    return [json.loads((out / f'rank{r}.json').read_text()) for r in range(2)]


@pytest.mark.slow
def test_two_gloo_processes_share_the_statistics_of_the_global_batch(ranks):
    # Reference: one process with the whole batch.
    torch.manual_seed(0)
    x = torch.randn(5, 4, dtype=torch.float64) * torch.arange(1., 5.) + 2.
    weight = torch.randn(5, 4, dtype=torch.float64)
    bn = nn.BatchNorm1d(4).double()
    whole = x.clone().requires_grad_()
    (bn(whole) * weight).sum().backward()
    for rank, result in enumerate(ranks):
        layer = {k: torch.tensor(v, dtype=torch.float64) for k, v in result['layer'].items()}
        torch.testing.assert_close(layer['running_mean'], bn.running_mean, rtol=1e-12, atol=0)
        torch.testing.assert_close(layer['running_var'], bn.running_var, rtol=1e-12, atol=0)
        torch.testing.assert_close(layer['input_grad'], whole.grad[rank::2], rtol=1e-10,
                                   atol=1e-12)
    # Each rank's parameter gradient is its share; DDP sums them.
    torch.testing.assert_close(
        torch.tensor(ranks[0]['layer']['weight_grad'], dtype=torch.float64)
        + torch.tensor(ranks[1]['layer']['weight_grad'], dtype=torch.float64),
        bn.weight.grad, rtol=1e-10, atol=1e-12)
    stats = [{k: torch.tensor(v) for k, v in r['cast_mm.MaskedSyncBN'].items()} for r in ranks]
    assert len(stats[0]) == 5
    for name, value in stats[0].items():
        assert torch.equal(value, stats[1][name]), name
        assert value.abs().sum() > 0, name


@pytest.mark.slow
def test_plain_batch_norm_keeps_per_process_statistics(ranks):
    stem = 'stem.proj.1.running_mean'
    assert not torch.allclose(torch.tensor(ranks[0]['BN'][stem]),
                              torch.tensor(ranks[1]['BN'][stem]))


@pytest.mark.parametrize('norm_type', [nn.BatchNorm1d, MaskedSyncBatchNorm])
def test_masked_token_norm_is_batch_norm_of_the_real_tokens_without_host_reads(norm_type):
    from cast_analysis.host_reads import HostReadCounter
    torch.manual_seed(0)
    tokens = (torch.randn(2, 5, 3, dtype=torch.float64) * 2 + 1).requires_grad_()
    padding = torch.tensor([[False, False, True, True, True], [False, False, False, False, True]])
    weight = torch.randn(2, 5, 3, dtype=torch.float64)
    norm, reference = norm_type(3).double(), nn.BatchNorm1d(3).double()
    with HostReadCounter() as reads:
        out = norm_segment_tokens(norm, tokens, padding)
        (out * weight).sum().backward()
    assert reads.count == 0, reads.summary()
    grad = tokens.grad.clone()
    tokens.grad = None
    expected = reference(tokens[~padding])
    (expected * weight[~padding]).sum().backward()
    assert torch.allclose(out[~padding], expected)
    assert torch.equal(out[padding], torch.zeros_like(out[padding]))
    assert torch.allclose(grad, tokens.grad)
    assert torch.allclose(norm.running_mean, reference.running_mean)
    assert torch.allclose(norm.running_var, reference.running_var)
    assert int(norm.num_batches_tracked) == 1

"""tools/analysis/get_flops.py: parameters and GFLOPs of our configs and mmseg's, in-process."""
import os.path as osp

import torch
import torch.nn.functional as F
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, load_tool

from cast_analysis.flops import TensorForward, model_complexity, sdpa_flop_jit

#: cast-s_upernet_ade20k.py shrunk: tiny CAST and heads (the checkpoint is never loaded).
TINY_UPERNET = f"""_base_ = [{osp.join(REPO, 'configs', 'cast', 'cast-s_upernet_ade20k.py')!r}]
model = dict(
    backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}), num_clusters={TINY_CLUSTERS!r},
                  pool_num_heads=4, img_size=64),
    decode_head=dict(in_channels=[48] * 4, channels=32),
    auxiliary_head=dict(in_channels=48, channels=16))
"""


def test_fused_attention_counts_as_its_two_products():
    from mmengine.analysis import FlopAnalyzer

    class Explicit(torch.nn.Module):
        def forward(self, q, k, v):
            return (q @ k.transpose(-2, -1)).softmax(-1) @ v

    class Fused(torch.nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 4)
    fused = FlopAnalyzer(Fused(), (q, k, v))
    fused.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    assert fused.total() == FlopAnalyzer(Explicit(), (q, k, v)).total() == 2 * 3 * 7 * 5 * 12


def test_our_config_is_counted_on_its_pipeline_superpixels(tmp_path, capsys):
    config = tmp_path / 'tiny_upernet.py'
    config.write_text(TINY_UPERNET)
    assert load_tool('analysis/get_flops').main([str(config), '--shape', '64', '96']) == 0
    printed = capsys.readouterr().out.splitlines()
    # SEEDS preset 'seg': H * W / 256 superpixels
    assert printed[1] == 'input 64x96, 24 superpixels'
    result = model_complexity(str(config), (64, 96))
    assert printed[2] == f'params {result["params"] / 1e6:.2f} M'
    assert printed[3] == f'GFLOPs {result["flops"] / 1e9:.2f}'
    # A larger image costs more; the parameters do not change.
    larger = model_complexity(str(config), (128, 96))
    assert larger['params'] == result['params'] and larger['flops'] > result['flops']


def test_stock_mmseg_config_is_counted(capsys):
    """mmseg 1.2.2's own tools/analysis_tools/get_flops.py fails on MMEngine 0.10.7."""
    assert load_tool('analysis/get_flops').main(
        ['mmseg::vit/vit_deit-s16_upernet_8xb2-160k_ade20k-512x512.py', '--shape', '64', '64',
         '--cfg-options', 'model.backbone.num_layers=4', 'model.backbone.out_indices=[0,1,2,3]',
         'model.backbone.img_size=[64,64]']) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == 'input 64x64' and float(printed[3].split()[1]) > 0


def test_the_traced_call_is_the_tensor_forward():
    class Model(torch.nn.Module):
        def forward(self, inputs, data_samples, mode):
            return inputs * 2 if (data_samples, mode) == ('held', 'tensor') else None

    assert torch.equal(TensorForward(Model(), 'held')(torch.ones(1)), torch.full((1, ), 2.))

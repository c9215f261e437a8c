"""CAST backbone: arch zoo, modes, batch padding, sharp edges, input checks, tracing."""
import pytest
import torch
from helpers import TINY_ARCH, TINY_CLUSTERS, grid_superpixels
from helpers import tiny_cast as tiny

from cast_mm.models import CAST


def n_params(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


@pytest.mark.parametrize('arch,params', [('small', 27_954_864), ('small-deep', 35_052_720),
                                         ('base', 111_030_624), ('base-deep', 139_382_112)])
def test_arch_zoo_matches_official_parameter_counts(arch, params):
    # Parameter counts of the official classification models without their head.
    model = CAST(arch=arch, pos_embed='learned')
    assert n_params(model) == params


def test_classification_freezes_last_pool_segmentation_does_not():
    cls = CAST(arch='small')
    assert n_params(cls, trainable=True) == 26_176_944  # official count minus the 1000-class head
    assert not any(p.requires_grad for p in cls.pools[3].parameters())
    seg = CAST(arch='small', mode='segmentation')
    assert all(p.requires_grad for p in seg.parameters())
    assert seg.num_clusters == (320, 160, 80, 40) and cls.num_clusters == (64, 32, 16, 8)


def test_unknown_arch_and_mode_are_rejected():
    with pytest.raises(ValueError, match='unknown CAST arch'):
        CAST(arch='huge')
    with pytest.raises(ValueError, match='needs the keys'):
        CAST(arch=dict(embed_dims=48))
    with pytest.raises(ValueError, match='mode'):
        CAST(mode='detection')
    with pytest.raises(ValueError, match='num_clusters'):
        CAST(num_clusters=(8, 4))


def test_output_shapes_both_modes():
    x = torch.randn(2, 3, 64, 64)
    sp = grid_superpixels(2, 64, 64)
    with torch.no_grad():
        cls_out = tiny()(x, sp)[0]
        seg = tiny('segmentation')
        feats = seg.forward_features(x, sp)
        with_cls = tiny('segmentation', out_type='fused_tokens_with_cls')(x, sp)[0]
    assert cls_out.shape == (2, 48)
    assert feats.fused_tokens.shape == (2, 64, 48) and with_cls.shape == (2, 65, 48)
    assert [t.shape[1] for t in feats.stage_tokens] == [64, 16, 8, 4]
    assert [tuple(x.shape[1:]) for x in feats.pool_logits] == [(64, 16), (16, 8), (8, 4), (4, 2)]
    assert feats.token_labels.shape == (2, 64, 64)


@pytest.mark.parametrize('mode', ['classification', 'segmentation'])
def test_batch_invariant_mode_gives_same_output_alone_and_in_batch(mode):
    model = tiny(mode, mask_padding=True)
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    sp = torch.stack([grid_superpixels(1, 64, 64, cell=16)[0],  # 16 segments
                      grid_superpixels(1, 64, 64, cell=8)[0]])  # 64 segments: pads image 0
    with torch.no_grad():
        alone = model.forward_features(x[:1], sp[:1])
        batch = model.forward_features(x, sp)
    n = alone.stage_tokens[0].shape[1]
    assert batch.stage_tokens[0].shape[1] == 64 and n == 16
    if mode == 'classification':
        torch.testing.assert_close(batch.cls_feature[:1], alone.cls_feature, atol=1e-5, rtol=0)
    else:
        torch.testing.assert_close(batch.fused_tokens[:1, :n], alone.fused_tokens,
                                   atol=1e-5, rtol=0)
    for k in range(4):
        assert torch.equal(batch.sampled_inds[k][:1], alone.sampled_inds[k])


def test_official_mode_is_batch_dependent_as_documented():
    model = tiny()
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    sp = torch.stack([grid_superpixels(1, 64, 64, cell=16)[0],
                      grid_superpixels(1, 64, 64, cell=8)[0]])
    with torch.no_grad():
        alone = model(x[:1], sp[:1])[0]
        batch = model(x, sp)[0]
    assert not torch.allclose(alone, batch[:1], atol=1e-4)


def test_gapped_ids_equal_compact_ids_in_batch_invariant_mode():
    model = tiny('segmentation', mask_padding=True)
    x = torch.randn(1, 3, 64, 64)
    compact = grid_superpixels(1, 64, 64)
    gapped = compact * 3 + 5  # ids 5, 8, 11, ...: most token slots are empty
    with torch.no_grad():
        a = model.forward_features(x, compact)
        b = model.forward_features(x, gapped)
    torch.testing.assert_close(b.fused_tokens[0, gapped.unique()], a.fused_tokens[0],
                               atol=1e-5, rtol=0)
    assert b.padding_masks[0].sum() == b.padding_masks[0].numel() - 64


@pytest.mark.parametrize('mask_padding', [False, True])
def test_fewer_segments_than_clusters_marks_clusters_as_padding(mask_padding):
    model = tiny('segmentation', mask_padding=mask_padding)
    x = torch.randn(2, 3, 64, 64)
    sp = grid_superpixels(2, 64, 64, cell=32)  # 4 segments, 16 clusters in pool 1
    with torch.no_grad():
        feats = model.forward_features(x, sp)
    mask = feats.pool_padding_masks[0]
    assert mask.shape == (2, 16) and mask.sum(1).tolist() == [12, 12]
    # Padded clusters take no token, so the hierarchy never points at them.
    labels = feats.pool_logits[0].argmax(-1)
    assert not mask.gather(1, labels).any()
    assert torch.isfinite(feats.fused_tokens).all()
    assert feats.padding_masks[1].equal(mask)


def test_single_segment_image_does_not_crash():
    model = tiny(mask_padding=True)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.long))[0]
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('mode', ['classification', 'segmentation'])
@pytest.mark.parametrize('size', [(60, 70), (41, 33)])
def test_sides_not_multiple_of_8(mode, size):
    model = tiny(mode)
    sp = grid_superpixels(1, *size, cell=6)
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, *size), sp)
    if mode == 'segmentation':
        assert feats.token_labels.shape == (1, *size)
        assert feats.fused_tokens.shape[1] == int(sp.max()) + 1
    else:
        assert feats.token_labels.shape == (1, (size[0] + 7) // 8, (size[1] + 7) // 8)
    assert all(torch.isfinite(t).all() for t in feats.stage_tokens)


def test_bad_superpixel_maps_raise_clear_errors():
    model = tiny()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match=r'\(B, H, W\) = \(2, 64, 64\).*got \(2, 32, 32\)'):
        model(x, grid_superpixels(2, 32, 32))
    with pytest.raises(ValueError, match=r'got \(64, 64\)'):
        model(x, grid_superpixels(1, 64, 64)[0])
    with pytest.raises(ValueError, match='integer ids.*float32'):
        model(x, grid_superpixels(2, 64, 64).float())
    with pytest.raises(ValueError, match='>= 0, got min -1'):
        model(x, grid_superpixels(2, 64, 64) - 1)
    with pytest.raises(ValueError, match='num_slots=10'):
        model(x, grid_superpixels(2, 64, 64), num_slots=10)
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        model(x[0], grid_superpixels(2, 64, 64))


def test_training_step_has_gradients_and_dropout_paths():
    model = CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS, img_size=64, drop_path_rate=0.1,
                 drop_rate=0.1)
    model.init_weights()
    model.train()
    assert not model.pools[3].training  # frozen last pool stays in eval mode
    out = model(torch.randn(2, 3, 64, 64), grid_superpixels(2, 64, 64))[0]
    out.sum().backward()
    assert model.stem.proj[0].weight.grad is not None
    assert model.pools[0].fc1[1].weight.grad is not None


def test_every_gradient_has_its_parameters_strides():
    """DDP's gradient layout contract: a gradient strided otherwise than its parameter (as a
    1x1 convolution of channels-last input gives on several CPU threads) is copied into its
    bucket with a 'Grad strides do not match' warning."""
    model = CAST(arch=TINY_ARCH, mode='segmentation', num_clusters=TINY_CLUSTERS, img_size=64)
    model.init_weights()
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model(torch.randn(2, 3, 64, 64), grid_superpixels(2, 64, 64))[0].sum().backward()
    finally:
        torch.set_num_threads(threads)
    for name, param in model.named_parameters():
        if param.grad is not None:
            assert param.grad.stride() == param.stride(), name


def test_fused_attention_matches_literal():
    x = torch.randn(2, 3, 64, 64)
    sp = grid_superpixels(2, 64, 64)
    literal = tiny('segmentation', fused_attn=False)
    fused = tiny('segmentation', fused_attn=True)
    fused.load_state_dict(literal.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fused(x, sp)[0], literal(x, sp)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_compile_and_export_trace_the_whole_backbone():
    model = tiny()
    x = torch.randn(2, 3, 64, 64)
    sp = grid_superpixels(2, 64, 64)
    with torch.no_grad():
        expected = model(x, sp)[0]
        compiled = torch.compile(model, backend='eager')(x, sp)[0]
        exported = torch.export.export(model, (x, sp), kwargs=dict(num_slots=64))
        out = exported.module()(x, sp, num_slots=64)[0]
    torch.testing.assert_close(compiled, expected)
    torch.testing.assert_close(out, expected)
    assert 'cast_mm.farthest_point_sampling' in str(exported.graph)


def test_missing_pretrained_checkpoint_names_the_official_weights(tmp_path):
    from cast_mm.checkpoints import DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES
    missing = str(tmp_path / 'cast-s_deit_in1k.pth')
    model = CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS,
                 init_cfg=dict(type='Pretrained', checkpoint=missing))
    with pytest.raises(FileNotFoundError, match='does not exist') as info:
        model.init_weights()
    message = str(info.value)
    assert missing in message and 'init_cfg=None' in message
    # every official file by its full URL, the converter only for an offline copy, and no
    # advice to unpickle fully
    for path in OFFICIAL_FILES:
        assert f'{DEFAULT_WEIGHTS_BASE}/{path}' in message, path
    assert f'cast_official_to_mm.py OFFICIAL_FILE {missing}' in message
    assert 'need no --trust-pickle' in message and message.count('--trust-pickle') == 1
    # an existing file loads as usual
    source = CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS)
    torch.save(dict(state_dict=source.state_dict()), missing)
    model.init_weights()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 source.state_dict().values()))

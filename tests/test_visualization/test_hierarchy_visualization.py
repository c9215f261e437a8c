"""Hierarchy pictures: drawing functions, the MMEngine visualizer, the hook and the tool."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, TINY_ARCH, TINY_CLUSTERS, load_tool, write_tiny_backbone
from helpers.hub import DEIT, file_bytes, loopback_hub, to_official_deit
from mmengine.registry import VISUALIZERS

from cast_mm.apis import SegmentHierarchy, extract_hierarchy
from cast_mm.engine import HierarchyVisualizationHook
from cast_mm.models import CAST
from cast_mm.visualization import (HierarchyVisualizer, draw_hierarchy, draw_segments,
                                   segment_palette)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    yield from loopback_hub(tmp_path, monkeypatch)


def toy_hierarchy():
    """Four 4 x 4 superpixels of an 8 x 8 image, grouped 2 + 2, then 1."""
    level0 = torch.arange(4).view(2, 2).repeat_interleave(4, 0).repeat_interleave(4, 1)
    level1 = level0 % 2
    level2 = torch.zeros_like(level0)
    return SegmentHierarchy(
        label_maps=[level0, level1, level2],
        parents=[torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0])],
        features=[torch.zeros(4, 2), torch.zeros(2, 2), torch.zeros(1, 2)],
        token_index=[torch.arange(4), torch.arange(2), torch.arange(1)],
        superpixel_ids=torch.arange(4))


def test_draw_segments_colours_and_boundaries():
    image = np.full((8, 8, 3), 100, np.uint8)
    labels = toy_hierarchy().label_maps[0].numpy()
    out = draw_segments(image, labels, alpha=1.0, boundary_color=(1, 2, 3))
    palette = segment_palette(4)
    assert (segment_palette(9)[:4] == palette).all()
    assert (out[0, 0] == palette[0]).all() and (out[7, 7] == palette[3]).all()
    # skimage 'inner' boundaries of a label map: the first pixels after a label change.
    assert (out[4, 0] == (1, 2, 3)).all() and (out[0, 4] == (1, 2, 3)).all()
    assert (out[0, 3] == palette[0]).all()
    half = draw_segments(image, np.zeros((8, 8), np.int64), alpha=0.5)
    expected = np.round(100 * 0.5 + palette[0].astype(np.float32) * 0.5)
    assert (half == expected.astype(np.uint8)).all()
    with pytest.raises(ValueError, match='does not match'):
        draw_segments(image, labels[:4])


def test_draw_hierarchy_panel_layout():
    drawing = draw_hierarchy(np.zeros((8, 8, 3), np.uint8), toy_hierarchy())
    assert drawing.names == ['superpixels (4)', 'level 1 (2)', 'level 2 (1)']
    assert len(drawing.levels) == 3 and drawing.levels[0].shape == (8, 8, 3)
    # image + 3 levels of width 8, three 4-pixel gaps, a 14-pixel caption bar.
    assert drawing.panel.shape == (8 + 14, 4 * 8 + 3 * 4, 3)


def test_visualizer_logs_panel_and_writes_files(tmp_path):
    visualizer = VISUALIZERS.build(dict(
        type='cast_mm.HierarchyVisualizer', name='test_vis_files',
        vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path / 'vis')))
    assert isinstance(visualizer, HierarchyVisualizer)
    visualizer.add_hierarchy('toy', np.zeros((8, 8, 3), np.uint8), toy_hierarchy(),
                             out_dir=str(tmp_path / 'out'))
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert names == ['toy_level0.png', 'toy_level1.png', 'toy_level2.png', 'toy_panel.png']
    logged = list((tmp_path / 'vis').rglob('*.png'))
    assert len(logged) == 1 and cv2.imread(str(logged[0])).shape == (22, 44, 3)


class _Runner:
    """The parts of an MMEngine runner the hook uses."""

    def __init__(self, model, visualizer, work_dir):
        self.model, self.visualizer, self.work_dir = model, visualizer, work_dir
        self.iter = 3


def test_hook_draws_after_test_and_every_interval(tmp_path):
    torch.manual_seed(0)
    model = CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS, img_size=64, pos_embed='sincos')
    image = np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)
    path = str(tmp_path / 'probe.png')
    cv2.imwrite(path, image)
    visualizer = HierarchyVisualizer(name='test_vis_hook')
    runner = _Runner(model, visualizer, str(tmp_path))
    hook = HierarchyVisualizationHook([path], interval=2, draw_after=('test', ),
                                      out_dir='hierarchy')
    hook.before_run(runner)
    hook.after_test_epoch(runner)
    assert osp.exists(tmp_path / 'hierarchy' / 'test_3' / 'probe_panel.png')
    hook.after_train_iter(runner, batch_idx=0)  # iteration 4: 4 % 2 == 0
    assert osp.exists(tmp_path / 'hierarchy' / 'train_3' / 'probe_level4.png')
    hook.after_val_epoch(runner)  # 'val' not requested
    assert not osp.exists(tmp_path / 'hierarchy' / 'val_3')
    with pytest.raises(TypeError, match='HierarchyVisualizer'):
        hook.before_run(_Runner(model, object(), str(tmp_path)))
    with pytest.raises(ValueError, match='draw_after'):
        HierarchyVisualizationHook([path], draw_after=('train', ))


@pytest.mark.slow
def test_tool_writes_levels_and_panels_for_a_folder(tmp_path):
    """The one run of the tool as a command (the other tests call its main in-process)."""
    rng = np.random.RandomState(0)
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in ('a.png', 'b.jpg'):
        cv2.imwrite(str(folder / name), rng.randint(0, 255, (70, 90, 3), dtype=np.uint8))
    config, ckpt, model = write_tiny_backbone(tmp_path)
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'visualize_hierarchy.py'), str(folder),
         str(config), str(ckpt), '--out', str(out), '--short-side', '64', '--batch-size', '2'],
        capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    for stem in ('a', 'b'):
        panel = cv2.imread(str(out / f'{stem}_panel.png'))
        assert panel is not None and panel.shape[1] > 6 * 82
        for level in range(5):
            assert cv2.imread(str(out / f'{stem}_level{level}.png')).shape == (64, 82, 3)
    # The checkpoint was loaded (and batching is invariant): the tool's level-4 picture matches
    # the in-process hierarchy.
    image = cv2.cvtColor(cv2.imread(str(folder / 'a.png')), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (82, 64), interpolation=cv2.INTER_AREA)
    expected = draw_hierarchy(image, extract_hierarchy(model.eval(), image)).levels[4]
    assert (cv2.imread(str(out / 'a_level4.png'))[..., ::-1] == expected).all()


def _run_tool(*args):
    """``tools/visualize_hierarchy.py`` in this process, through its ``main(argv)``."""
    load_tool('visualize_hierarchy').main([str(arg) for arg in args])


def _image(tmp_path):
    path = tmp_path / 'photo.png'
    cv2.imwrite(str(path), np.random.RandomState(0).randint(0, 255, (60, 80, 3), np.uint8))
    return path


TINY_OVERRIDES = (f'backbone=dict(arch=dict(_delete_=True, **{TINY_ARCH!r}), '
                  f'num_clusters={TINY_CLUSTERS!r}, '
                  'img_size=64, pool_num_heads=4)')


@pytest.mark.parametrize('base,head,size', [
    ('cast-s_ade20k.py', 'decode_head=dict(in_channels=48, channels=48, num_heads=4)',
     (512, 683)),  # the test pipeline's resize into (2048, 512)
    ('cast-s_8xb128_in1k.py', 'head=dict(in_channels=48)', (224, 224)),  # resize + crop
])
@pytest.mark.slow
def test_tool_draws_any_model_with_a_cast_backbone(tmp_path, monkeypatch, base, head, size):
    config = tmp_path / 'tiny.py'
    config.write_text(f"_base_ = [{osp.join(REPO, 'configs', 'cast', base)!r}]\n"
                      f'model = dict({TINY_OVERRIDES}, {head})\n')
    image = _image(tmp_path)
    # 'random' must not fetch the config's init_cfg checkpoint (the official URL): the
    # weights base points at a closed port, so any download attempt would fail.
    monkeypatch.setenv('CAST_MM_WEIGHTS_BASE', 'http://127.0.0.1:9/none')
    _run_tool(image, config, 'random', '--out', tmp_path / 'random')
    assert cv2.imread(str(tmp_path / 'random' / 'photo_panel.png')) is not None

    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from cast_mm.registry import MODELS
    cfg = Config.fromfile(str(config))
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'cast_mm')):
        model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    _run_tool(image, config, ckpt, '--out', tmp_path / 'trained')
    assert cv2.imread(str(tmp_path / 'trained' / 'photo_level4.png')).shape == (*size, 3)
    with pytest.raises(SystemExit, match='--short-side is for bare backbones'):
        _run_tool(image, config, ckpt, '--out', tmp_path / 'trained', '--short-side', 64)


@pytest.mark.slow
def test_tool_draws_the_demo_model_with_its_own_checkpoint(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from cast_mm.registry import MODELS
    config = osp.join(REPO, 'configs', 'cast', 'cast-s_demo.py')
    # built as the demo's runner builds it: mmseg's default scope around cast_mm's types
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(Config.fromfile(config).model)
    ckpt = tmp_path / 'iter_200.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=200)), ckpt)
    _run_tool(_image(tmp_path), config, ckpt, '--out', tmp_path / 'out')
    assert cv2.imread(str(tmp_path / 'out' / 'photo_panel.png')) is not None


def test_tool_refuses_foreign_weights_and_unknown_names(tmp_path, capsys):
    config = tmp_path / 'tiny.py'
    config.write_text(f"model = dict(type='cast_mm.CAST', arch={TINY_ARCH!r}, "
                      f"num_clusters={TINY_CLUSTERS!r}, img_size=64)\n")
    foreign = tmp_path / 'resnet.pth'
    torch.save(dict(state_dict={'backbone.layer1.0.conv1.weight': torch.zeros(4, 4, 1, 1)}),
               foreign)
    with pytest.raises(Exception, match='a ResNet checkpoint, not CAST') as error:
        _run_tool(_image(tmp_path), config, foreign, '--out', tmp_path / 'out')
    assert str(foreign) in str(error.value)
    for name, message in (('cast-s_nonexistent', 'cast-s_deit_in1k'),
                          ('cast-s_ade20k', 'no official weights')):
        with pytest.raises(SystemExit) as exit_info:
            _run_tool(_image(tmp_path), '--model', name, '--out', tmp_path)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_tool_draws_official_weights_by_model_name(hub, tmp_path, mmpretrain_scope):
    from mmpretrain import get_model

    from cast_mm.apis import HierarchyExtractor
    torch.manual_seed(0)
    source = get_model('cast-s_deit_in1k').eval()
    official = to_official_deit(source.state_dict(), source.backbone.depths)
    hub.serve(DEIT, file_bytes(official, tmp_path))
    from skimage import data  # a real photograph (bundled with scikit-image), 60 x 80
    image_path = tmp_path / 'photo.png'
    cv2.imwrite(str(image_path), cv2.resize(data.astronaut()[..., ::-1], (80, 60),
                                            interpolation=cv2.INTER_AREA))
    _run_tool(image_path, '--model', 'cast-s_deit_in1k', '--out', tmp_path / 'out')
    assert len(hub.hits) == 1
    # the model as mmpretrain builds it by name, through its config's test pipeline
    result = HierarchyExtractor(source).run(str(image_path))[0]
    expected = draw_hierarchy(result.image, result.hierarchy).levels[4]
    assert (cv2.imread(str(tmp_path / 'out' / 'photo_level4.png'))[..., ::-1] == expected).all()

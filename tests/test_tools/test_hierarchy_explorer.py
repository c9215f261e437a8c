"""tools/hierarchy_explorer.py: image handling, and the page driven in a headless Chromium."""
import importlib
import os
import re

import cv2
import numpy as np
import pytest
import torch
from helpers import load_tool
from helpers.hub import DEIT, file_bytes, loopback_hub, to_official_deit

from cast_mm.apis import HierarchyExtractor, extract_hierarchy


def _write(path, image):
    assert cv2.imwrite(str(path), image)
    return str(path)


# ----------------------------------------------------------------------------- without browser
def test_read_image_converts_or_names_the_problem(tmp_path):
    tool = load_tool('hierarchy_explorer')
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(tool.BadImage, match='empty'):
        tool.read_image(str(empty))
    text = tmp_path / 'notes.png'
    text.write_text('not an image at all')
    with pytest.raises(tool.BadImage, match='not an image'):
        tool.read_image(str(text))
    grey = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    image, notes = tool.read_image(_write(tmp_path / 'grey.png', grey))
    assert image.shape == (48, 64, 3) and (image[..., 1] == grey).all()
    assert notes == ['grey image: copied to three channels']
    deep = (grey.astype(np.uint16) * 257)
    image, notes = tool.read_image(_write(tmp_path / 'deep.png', deep))
    assert (image[..., 0] == grey).all() and '16-bit' in notes[0]
    colour = np.stack([deep, deep // 2, deep // 4], axis=-1)  # BGR, 16 bits per channel
    image, notes = tool.read_image(_write(tmp_path / 'deep_rgb.png', colour))
    assert np.abs(image.astype(int) - colour[..., ::-1] // 257).max() <= 1
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., 2] = 255  # red in BGRA
    rgba[:, :32, 3] = 255  # left half opaque, right half transparent
    image, notes = tool.read_image(_write(tmp_path / 'rgba.png', rgba))
    assert (image[0, 0] == (255, 0, 0)).all() and (image[0, 63] == (255, 255, 255)).all()
    assert 'transparent' in notes[0]


def test_fit_image_resizes_to_the_model_size_and_refuses_slivers():
    tool = load_tool('hierarchy_explorer')
    resized, notes = tool.fit_image(np.zeros((4000, 6000, 3), np.uint8), 224)
    assert resized.shape == (224, 336, 3)
    assert notes == ['resized from 6000 x 4000 to 336 x 224 (shorter side 224, the size the '
                     'model works at)']
    same, notes = tool.fit_image(np.zeros((224, 300, 3), np.uint8), 224)
    assert same.shape == (224, 300, 3) and notes == []
    with pytest.raises(tool.BadImage, match='at least 32'):
        tool.fit_image(np.zeros((20, 300, 3), np.uint8), 224)
    with pytest.raises(tool.BadImage, match='crop it'):
        tool.fit_image(np.zeros((100, 500, 3), np.uint8), 224)


def test_page_offers_classification_and_moco_models():
    tool = load_tool('hierarchy_explorer')
    names = tool.selectable_models()
    assert 'cast-s_deit_in1k' in names and 'cast-s_mocov3-100e_8xb32_in1k' in names
    assert 'cast-s_ade20k' not in names  # no official weights
    assert 'cast-s_partimagenet' not in names  # a segmentation model


def test_command_line_checks(capsys):
    tool = load_tool('hierarchy_explorer')
    assert tool.parse_args([]).model == 'cast-s_deit_in1k'
    args = tool.parse_args(['--model', 'random'])
    assert (args.host, args.port, args.max_upload_mb) == ('127.0.0.1', 7860, 20.)
    for argv, message in ((['--model', 'nonexistent'], 'unknown model'),
                          (['--model', 'cast-s_ade20k'], 'no official weights'),
                          (['--config', 'a.py'], 'go together'),
                          (['--max-upload-mb', '0'], 'must be positive')):
        with pytest.raises(SystemExit):
            tool.parse_args(argv)
        assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------- in a browser
def _browser_requirements():
    for module in ('gradio', 'playwright'):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f'{module} is not installed (bash tools/install.sh --tests)')
    from cast_analysis import explorer as timing
    try:
        timing.find_chromium()
    except FileNotFoundError as error:
        pytest.skip(f'{error} (or bash tools/install.sh --tests as root)')
    return timing


@pytest.fixture(scope='module')
def browser():
    timing = _browser_requirements()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        chromium = timing.launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope='module')
def random_app():
    timing = _browser_requirements()
    proc, url = timing.start_explorer(['--model', 'random', '--max-upload-mb', '2'])
    yield url
    timing.stop_explorer(proc)


def _random_model():
    """The explorer's ``random`` model, built as the tool builds it (seeded)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from cast_mm.checkpoints import model_info
    tool = load_tool('hierarchy_explorer')
    cfg = Config.fromfile(model_info('cast-s_deit_in1k')['config'])
    # The tool builds in the config's scope; earlier tests may have left another one current.
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'cast_mm')):
        return tool.build_model(cfg, 'random', 'cpu'), tool.hierarchy_settings(cfg)


def _assert_npz_equals_extraction(path, model, settings):
    saved = np.load(path)
    expected = extract_hierarchy(model, saved['image'], **settings)
    assert saved['label_maps'].shape == (expected.num_levels, ) + saved['image'].shape[:2]
    for level, label_map in enumerate(expected.label_maps):
        assert np.array_equal(saved['label_maps'][level], label_map.numpy()), level
    for level, parents in enumerate(expected.parents):
        assert np.array_equal(saved[f'parents_{level}'], parents.numpy()), level
    seeds = HierarchyExtractor(model, **settings).superpixels(saved['image'])
    assert np.array_equal(saved['superpixels'], seeds)
    return saved


def _clicked_point(path_text, target):
    """The image pixel the page reports as clicked; within a pixel or two of ``target`` (the
    picture is shown scaled to the page width)."""
    match = re.search(r'Point \((\d+), (\d+)\)', path_text)
    assert match, path_text
    x, y = int(match.group(1)), int(match.group(2))
    assert abs(x - target[0]) <= 2 and abs(y - target[1]) <= 2, (x, y)
    return x, y


def _screenshot(page):
    """Save the page as docs show it when ``CAST_MM_EXPLORER_SCREENSHOT`` names a file."""
    path = os.environ.get('CAST_MM_EXPLORER_SCREENSHOT')
    if path:
        from PIL import Image
        page.page.screenshot(path=path, full_page=True)
        Image.open(path).convert('RGB').quantize(256).save(path, optimize=True)


def _highlighted(picture):
    return (picture == (255, 230, 0)).all(-1)


@pytest.mark.slow
def test_page_uploads_draws_clicks_and_downloads(random_app, browser, tmp_path):
    from cast_analysis import explorer as timing
    page = timing.ExplorerPage(browser, random_app)
    try:
        assert 'Random weights' in page.text('model-note')
        photo = timing.photo(256)[:, 16:]  # 256 x 240: resized to 224 on the short side
        page.upload(_write(tmp_path / 'photo.png', photo[..., ::-1]))
        assert 'resized from 240 x 256 to 224 x 239' in page.text('status')
        before = page.figure()
        tile = (before.shape[1] - 5 * 4) // 6
        assert tile == 224 and not _highlighted(before).any()
        bar = before.shape[0] - 239
        page.click_figure(tile + 4 + 100, bar + 150)  # superpixels tile, image pixel (100, 150)
        path_text = page.text('path')
        x, y = _clicked_point(path_text, (100, 150))
        after = page.figure()
        for column in range(1, 6):  # every level tile shows the outlined segment...
            drawn = _highlighted(after[bar:, column * (tile + 4):column * (tile + 4) + tile])
            assert drawn.any() or column == 5, column  # ...but a whole-image top segment
        _screenshot(page)
        npz = page.download('download-npz', str(tmp_path / 'hierarchy.npz'))
        png = page.download('download-png', str(tmp_path / 'hierarchy.png'))
        assert (cv2.imread(png)[..., ::-1] == after).all()
        model, settings = _random_model()
        saved = _assert_npz_equals_extraction(npz, model, settings)
        rows = [line for line in path_text.splitlines() if line.count('%') == 1]
        assert len(rows) == saved['label_maps'].shape[0]
        for level, row in enumerate(rows):
            segment = saved['label_maps'][level][y, x]
            pixels = int((saved['label_maps'][level] == segment).sum())
            assert f'{segment}\t{pixels}\t' in row.replace(' ', '\t') or \
                f'{segment} {pixels} ' in ' '.join(row.split()) + ' ', row
        # a bad file: a message, the picture stays, the server goes on
        text = tmp_path / 'notes.jpg'
        text.write_text('not an image at all')
        page.page.set_input_files('#upload input[type=file]', str(text))
        page.page.wait_for_function(
            "() => document.querySelector('#status').innerText.includes('not an image')")
        assert page.figure_src() is not None
        # over the upload cap: refused before the tool sees it
        noise = np.random.RandomState(0).randint(0, 256, (1000, 1000, 3)).astype(np.uint8)
        page.page.set_input_files('#upload input[type=file]', _write(tmp_path / 'big.png', noise))
        page.page.get_by_text('exceed the maximum allowed size of 2.0 Mb').wait_for()
        page.upload(_write(tmp_path / 'again.png', photo[:224, :224, ::-1]))
        assert 'segments per level' in page.text('status')
    finally:
        page.close()


@pytest.mark.slow
def test_visitors_do_not_share_images(random_app, browser, tmp_path):
    from cast_analysis import explorer as timing
    first, second = (timing.ExplorerPage(browser, random_app) for _ in range(2))
    try:
        wide = cv2.resize(timing.photo(224), (300, 224))  # not the example's size
        first.upload(_write(tmp_path / 'a.png', wide[..., ::-1]))
        first_src = first.figure_src()
        assert first.text('status').startswith('300 x 224 pixels')
        assert second.figure_src() is None
        assert 'Upload an image' in second.text('status')
        second.page.locator('#use-example').click()
        second.wait_new_figure(None)
        assert second.text('status').startswith('224 x 224 pixels')
        assert 'example photograph' in second.text('status')
        # the first visitor's picture, image and hierarchy are untouched
        assert first.figure_src() == first_src != second.figure_src()
        first.click_figure(300 + 4 + 250, first.figure().shape[0] - 224 + 10)
        x, y = _clicked_point(first.text('path'), (250, 10))
        assert first.text('status').startswith('300 x 224 pixels')
        # boundaries off re-draws; SLIC re-runs the model on the kept image
        previous = second.figure_src()
        second.page.locator('#boundaries input').click()
        previous = second.wait_new_figure(previous) and second.figure_src()
        second.page.get_by_label('SLIC').check()
        second.wait_new_figure(previous)
        model, settings = _random_model()
        saved = np.load(second.download('download-npz', str(tmp_path / 'slic.npz')))
        from cast_mm.datasets.transforms import SLICSuperpixels
        budget = HierarchyExtractor(model, **settings).seeds.budget(*saved['image'].shape[:2])
        slic = SLICSuperpixels(num_superpixels=budget, pixels_per_superpixel=None,
                               channel_order='rgb').compute(saved['image'])
        assert np.array_equal(saved['superpixels'], slic)
        expected = extract_hierarchy(model, saved['image'], slic, **settings)
        for level, label_map in enumerate(expected.label_maps):
            assert np.array_equal(saved['label_maps'][level], label_map.numpy()), level
    finally:
        first.close()
        second.close()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    yield from loopback_hub(tmp_path, monkeypatch)


@pytest.mark.slow
def test_model_by_name_from_the_weights_server(hub, browser, tmp_path):
    timing = _browser_requirements()
    source, settings = _random_model()
    torch.manual_seed(1)  # weights that differ from the page's own 'random' model
    with torch.no_grad():
        for param in source.parameters():
            param.add_(0.02 * torch.randn_like(param))
    hub.serve(DEIT, file_bytes(to_official_deit(source.state_dict(), source.backbone.depths),
                               tmp_path))
    env = {k: os.environ[k] for k in ('CAST_MM_WEIGHTS_BASE', 'TORCH_HOME')}
    proc, url = timing.start_explorer(['--model', 'cast-s_deit_in1k'], env=env)
    page = None
    try:
        assert len(hub.hits) == 1
        page = timing.ExplorerPage(browser, url)
        assert 'cast-s_deit_in1k' in page.text('model-note')
        assert 'Random' not in page.text('model-note')
        page.upload(_write(tmp_path / 'photo.png', timing.photo(224)[..., ::-1]))
        classes = page.text('classes')
        npz = page.download('download-npz', str(tmp_path / 'hierarchy.npz'))
        saved = _assert_npz_equals_extraction(npz, source, settings)
        top = _classify(source, saved, settings).pred_score.topk(5).indices.tolist()
        from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
        assert [IMAGENET_CATEGORIES[i] in classes for i in top] == [True] * 5, classes
    finally:
        if page is not None:
            page.close()
        timing.stop_explorer(proc)


def _classify(model, saved, settings):
    """The classifier's own prediction (mmpretrain ``predict``) on the saved image."""
    from mmpretrain.structures import DataSample
    pixels = torch.from_numpy(saved['image']).permute(2, 0, 1)[None].float()
    mean = torch.tensor(settings['mean']).view(1, 3, 1, 1)
    std = torch.tensor(settings['std']).view(1, 3, 1, 1)
    sample = DataSample()
    sample.set_field(torch.from_numpy(saved['superpixels']).long(), 'superpixels',
                     field_type='data')
    with torch.no_grad():
        return model.predict((pixels - mean) / std, [sample])[0]

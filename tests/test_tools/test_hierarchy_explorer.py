"""tools/hierarchy_explorer.py: image handling, and the page driven in a headless Chromium."""
import importlib
import os
import re

import cv2
import numpy as np
import pytest
import torch
from helpers import load_tool
from helpers.hub import DEIT, file_bytes, loopback_hub, to_official_deit, to_official_moco

from cast_mm.apis import HierarchyExtractor


def _write(path, image):
    assert cv2.imwrite(str(path), image)
    return str(path)


# ----------------------------------------------------------------------------- without browser
TINY_CLASSIFIER = (
    "_base_ = [{base!r}]\n"
    "model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=48, depths=(1, 1, 1, 1), "
    "num_heads=4), num_clusters=(16, 8, 4, 2), pool_num_heads=4), head=dict(in_channels=48))\n")


@pytest.fixture(scope='module')
def tiny_page(tmp_path_factory):
    """The explorer's page logic on a tiny DeiT classifier (random weights), and its config."""
    from helpers import REPO
    tool = load_tool('hierarchy_explorer')
    root = tmp_path_factory.mktemp('explorer')
    config = root / 'tiny_deit.py'
    config.write_text(TINY_CLASSIFIER.format(
        base=os.path.join(REPO, 'configs', 'cast', 'cast-s_8xb128_in1k.py')))
    models = tool.ModelCache('cpu', custom=(str(config), 'random'))
    return tool, tool.Explorer(models, str(root / 'out')), models.custom_label, str(config)


def _photo_file(tmp_path, name='photo.png', size=(200, 260)):
    from skimage import data
    return _write(tmp_path / name, cv2.resize(data.astronaut(), size)[..., ::-1])


def test_page_shows_what_the_inferencer_sees(tiny_page, tmp_path):
    """Superpixels and top-5 classes of an upload equal ImageClassificationInferencer's on the
    same file (the config's test pipeline: resize, centre crop, the DeiT SEEDS preset)."""
    from mmpretrain import ImageClassificationInferencer
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    tool, explorer, label, _ = tiny_page
    os.makedirs(explorer.out_dir, exist_ok=True)
    path = _photo_file(tmp_path)
    state = explorer.compute(path, [], label, tool.SEEDS, 0)
    model = explorer.models.get(label).model
    expected = ImageClassificationInferencer(model)(path, return_datasamples=True)[0]
    np.testing.assert_array_equal(state['superpixels'], expected.superpixels.numpy())
    top5 = expected.pred_score.topk(5).indices.tolist()
    assert list(state['top5']) == [IMAGENET_CATEGORIES[i] for i in top5]
    assert state['image'].shape == (224, 224, 3)
    saved = np.load(explorer.write_npz(state))
    np.testing.assert_array_equal(saved['superpixels'], state['superpixels'])
    np.testing.assert_array_equal(saved['label_maps'][0],
                                  state['hierarchy'].label_maps[0].numpy())


def test_visitors_keep_their_own_images(tiny_page, tmp_path):
    tool, explorer, label, _ = tiny_page
    os.makedirs(explorer.out_dir, exist_ok=True)
    first = explorer.compute(_photo_file(tmp_path, 'a.png'), [], label, tool.SEEDS, 0)
    first_image = first['image'].copy()
    first_figure = explorer.render(first, 0.5, True)
    second = explorer.compute(tool.example_image('coffee'), ['example'], label, tool.SEEDS, 0)
    second_figure = explorer.render(second, 0.5, True)
    explorer.write_npz(first), explorer.write_npz(second)
    assert explorer.click(first, (224 + 4 + 100, 200))
    explorer.render(first, 0.5, True)
    # the first visitor's image, picture files and hierarchy are untouched by the second's
    np.testing.assert_array_equal(first['image'], first_image)
    assert not np.array_equal(first['image'], second['image'])
    assert len({first['npz'], second['npz'], first_figure, second_figure}) == 4
    assert second['point'] is None and first['point'] is not None
    np.testing.assert_array_equal(np.load(first['npz'])['image'], first_image)
    # nothing of a visitor is kept by the page logic itself
    assert set(vars(explorer)) == {'models', 'out_dir'}


def test_page_handlers_give_each_visitor_the_state_of_their_own_upload(tiny_page, tmp_path):
    """The page's upload handler, as Gradio calls it for two visitors (each with an empty
    session state): the second visitor's state and picture are of the second image."""
    tool, explorer, label, _ = tiny_page
    os.makedirs(explorer.out_dir, exist_ok=True)
    demo = tool.build_demo(explorer, [label], label)
    on_upload = next(block.fn for block in demo.fns.values() if block.fn.__name__ == 'on_upload')
    files = [_photo_file(tmp_path, 'a.png'), _photo_file(tmp_path, 'b.png', (120, 90))]
    first, second = (next(on_upload(file, label, tool.SEEDS, 0, 0.5, True, None))[4]
                     for file in files)
    expected = explorer.compute(files[1], [], label, tool.SEEDS, 0)['image']
    assert not np.array_equal(first['image'], second['image'])
    np.testing.assert_array_equal(second['image'], expected)


def test_settings_rerun_the_visitors_own_image(tiny_page, tmp_path):
    tool, explorer, label, _ = tiny_page
    os.makedirs(explorer.out_dir, exist_ok=True)
    path = _photo_file(tmp_path)
    seeds = explorer.compute(path, [], label, tool.SEEDS, 0)
    slic = explorer.compute(seeds['source'], seeds['given_notes'], label, tool.SLIC, 0)
    more = explorer.compute(seeds['source'], seeds['given_notes'], label, tool.SEEDS, 400)
    np.testing.assert_array_equal(slic['image'], seeds['image'])
    assert not np.array_equal(slic['superpixels'], seeds['superpixels'])
    assert more['superpixels'].max() > seeds['superpixels'].max()


def test_bad_files_get_a_message(tiny_page, tmp_path):
    tool, explorer, label, _ = tiny_page
    os.makedirs(explorer.out_dir, exist_ok=True)
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(tool.BadImage, match='empty'):
        explorer.compute(str(empty), [], label, tool.SEEDS, 0)
    text = tmp_path / 'notes.png'
    text.write_text('not an image at all')
    with pytest.raises(tool.BadImage, match='not an image'):
        explorer.compute(str(text), [], label, tool.SEEDS, 0)
    grey = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    state = explorer.compute(_write(tmp_path / 'grey.png', grey), [], label, tool.SEEDS, 0)
    assert 'grey image: copied to three channels' in state['notes']


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
    from cast_mm.apis import init_model
    from cast_mm.checkpoints import model_info
    torch.manual_seed(0)
    return init_model(model_info('cast-s_deit_in1k')['config'])


def _assert_npz_equals_extraction(path, model, source):
    saved = np.load(path)
    result = HierarchyExtractor(model).run(source)[0]
    expected = result.hierarchy
    assert saved['label_maps'].shape == (expected.num_levels, ) + saved['image'].shape[:2]
    for level, label_map in enumerate(expected.label_maps):
        assert np.array_equal(saved['label_maps'][level], label_map.numpy()), level
    for level, parents in enumerate(expected.parents):
        assert np.array_equal(saved[f'parents_{level}'], parents.numpy()), level
    assert np.array_equal(saved['superpixels'], result.superpixels)
    assert np.array_equal(saved['image'], result.image)
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
        photo = timing.photo(256)[:, 16:]  # 256 x 240: resized and centre-cropped to 224
        uploaded = _write(tmp_path / 'photo.png', photo[..., ::-1])
        page.upload(uploaded)
        assert page.text('status').startswith('224 x 224 pixels')
        before = page.figure()
        tile = (before.shape[1] - 5 * 4) // 6
        assert tile == 224 and not _highlighted(before).any()
        bar = before.shape[0] - 224
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
        saved = _assert_npz_equals_extraction(npz, _random_model(), uploaded)
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


@pytest.fixture
def hub(tmp_path, monkeypatch):
    yield from loopback_hub(tmp_path, monkeypatch)


@pytest.mark.slow  # CAST-S three times (explorer, inferencer, tool) on a 2-core CPU
def test_explorer_tool_and_inferencer_agree_on_the_official_model(hub, tmp_path,
                                                                  mmpretrain_scope):
    """For cast-s_deit_in1k by name (stand-in official weights from a loopback server), the
    explorer, ``tools/visualize_hierarchy.py --model`` and mmpretrain's inferencer see the
    same superpixels and the explorer's top 5 are the inferencer's."""
    from mmpretrain import ImageClassificationInferencer
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES

    from cast_mm.visualization import draw_hierarchy
    source = _random_model()
    torch.manual_seed(1)  # weights that differ from the page's own 'random' model
    with torch.no_grad():
        for param in source.parameters():
            param.add_(0.02 * torch.randn_like(param))
    hub.serve(DEIT, file_bytes(to_official_deit(source.state_dict(), source.backbone.depths),
                               tmp_path))
    path = _photo_file(tmp_path)
    tool = load_tool('hierarchy_explorer')
    explorer = tool.Explorer(tool.ModelCache('cpu'), str(tmp_path / 'out'))
    os.makedirs(explorer.out_dir)
    state = explorer.compute(path, [], 'cast-s_deit_in1k', tool.SEEDS, 0)
    expected = ImageClassificationInferencer('cast-s_deit_in1k')(
        path, return_datasamples=True)[0]
    np.testing.assert_array_equal(state['superpixels'], expected.superpixels.numpy())
    top5 = expected.pred_score.topk(5).indices.tolist()
    assert list(state['top5']) == [IMAGENET_CATEGORIES[i] for i in top5]
    load_tool('visualize_hierarchy').main([path, '--model', 'cast-s_deit_in1k', '--out',
                                           str(tmp_path / 'vis')])
    assert len(hub.hits) == 1  # downloaded once, then cached
    drawing = draw_hierarchy(state['image'], state['hierarchy'])
    for level in (0, 4):
        picture = cv2.imread(str(tmp_path / 'vis' / f'photo_level{level}.png'))[..., ::-1]
        np.testing.assert_array_equal(picture, drawing.levels[level])


def _test_pipeline_superpixels(cfg, path):
    """The superpixels the config's test pipeline computes for the file ``path``."""
    from mmengine.dataset import Compose
    from mmengine.registry import TRANSFORMS, DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'cast_mm'):
        pipeline = Compose([TRANSFORMS.build(step) for step in cfg.test_pipeline])
    return pipeline(dict(img_path=path))['data_samples'].superpixels.numpy()


def _official_stand_in(name, tmp_path):
    """A model of ``name``'s config with weights unlike its initialisation, and the bytes of
    its official-layout file (the layout :data:`OFFICIAL_FILES` gives the name's weights)."""
    from cast_mm.apis import init_model
    from cast_mm.checkpoints import OFFICIAL_FILES, model_info
    path = model_info(name)['weights'].partition('/resolve/main/')[2]
    torch.manual_seed(1)
    source = init_model(model_info(name)['config'])
    with torch.no_grad():
        for param in source.parameters():
            param.add_(0.02 * torch.randn_like(param))
    convert = dict(deit=to_official_deit, moco=to_official_moco)[OFFICIAL_FILES[path].layout]
    return source, path, file_bytes(convert(source.state_dict(), source.backbone.depths),
                                    tmp_path)


@pytest.mark.slow  # every offered model built twice on a 2-core CPU (CAST-B among them)
@pytest.mark.parametrize('name', load_tool('hierarchy_explorer').selectable_models())
def test_every_offered_model_by_name_shows_what_its_config_sees(name, hub, tmp_path,
                                                                mmpretrain_scope):
    """Each model the page offers, by name with stand-in official weights from a loopback
    server: the page runs the weights of the file (converted when loaded), its superpixels
    are the config's test pipeline's and a classifier's top 5 are
    ``ImageClassificationInferencer(name)``'s."""
    from mmpretrain import ImageClassificationInferencer
    source, weights, body = _official_stand_in(name, tmp_path)
    hub.serve(weights, body)
    photo = _photo_file(tmp_path)
    tool = load_tool('hierarchy_explorer')
    explorer = tool.Explorer(tool.ModelCache('cpu'), str(tmp_path / 'out'))
    os.makedirs(explorer.out_dir)
    state = explorer.compute(photo, [], name, tool.SEEDS, 0)
    loaded = explorer.models.get(name).model
    weights = loaded.state_dict()
    for key, value in source.state_dict().items():  # the file has no momentum encoder
        assert key.startswith('momentum_encoder.') or torch.equal(weights[key], value), key
    np.testing.assert_array_equal(state['superpixels'],
                                  _test_pipeline_superpixels(loaded.cfg, photo))
    if name.split('_')[1].startswith('mocov3'):
        assert state['top5'] is None  # no classifier
        return
    expected = ImageClassificationInferencer(name)(photo, return_datasamples=True)[0]
    np.testing.assert_array_equal(state['superpixels'], expected.superpixels.numpy())
    top5 = expected.pred_score.topk(5).indices.tolist()
    assert list(state['top5']) == [explorer.models.get(name).classes[i] for i in top5]

"""Explore CAST's part-to-whole segmentation hierarchy of your images in the browser.

    bash tools/install.sh --demo                       # Gradio, once
    python3 tools/hierarchy_explorer.py                # cast-s_deit_in1k, official weights
    python3 tools/hierarchy_explorer.py --model random # the mechanism only: untrained weights
    python3 tools/hierarchy_explorer.py --config CFG --checkpoint CKPT [--device cuda]

then open the printed address (http://127.0.0.1:7860 by default). Upload an image or pick a
photograph bundled with scikit-image; the page shows the superpixels and the four levels of
the hierarchy side by side. Click a point to follow the segments containing it from part to
whole; download the picture (PNG) or the hierarchy (``.npz``, the arrays of
:func:`cast_mm.apis.save_hierarchy`, equal to ``cast_mm.apis.extract_hierarchy`` on the image
stored in it). See docs/hierarchy.md.

``--model`` names a classification or MoCo model of ``configs/cast/metafile.yml`` with
official weights (downloaded on first use, then cached); the page can switch between them.
Images are resized so that their shorter side is 224 pixels for classification-mode backbones
and 512 for segmentation-mode ones (``--short-side`` changes it). The server listens on
127.0.0.1 unless ``--host`` says otherwise, refuses uploads above ``--max-upload-mb``, reads no
file path sent by the page, and keeps every visitor's image and hierarchy in that visitor's
session.
"""
import argparse
import copy
import html
import logging
import os
import os.path as osp
import sys
import tempfile
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from visualize_hierarchy import build_model, hierarchy_settings  # noqa: E402

import cast_mm  # noqa: E402
from cast_mm.apis import HierarchyExtractor, get_cast_backbone, save_hierarchy  # noqa: E402
from cast_mm.checkpoints import index_models, model_info  # noqa: E402
from cast_mm.datasets.transforms import SLICSuperpixels  # noqa: E402
from cast_mm.visualization import HierarchyView  # noqa: E402

DEFAULT_MODEL = 'cast-s_deit_in1k'
RANDOM = 'random'
#: Photographs bundled with scikit-image (no download), offered as examples.
EXAMPLES = ('astronaut', 'chelsea', 'coffee', 'rocket')
#: Shorter image side per backbone mode: the sizes the models were trained at.
SHORT_SIDE = dict(classification=224, segmentation=512)
#: Images more elongated than this are refused (they would give a sliver per tile).
MAX_ASPECT = 4.
MIN_SIDE = 32
#: Longest side of each tile of the picture in the page.
TILE_SIZE = 320
#: Visitor sessions kept at once (each holds one image and its hierarchy); the oldest go first.
MAX_SESSIONS = 64
SEEDS, SLIC = 'SEEDS (model preset)', 'SLIC'
RANDOM_NOTE = ('**Random weights.** This model was never trained: the page shows how CAST '
               'groups superpixels, but the segments follow colour and position only and '
               'mean nothing, and the predicted classes are noise.')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Interactive CAST hierarchy explorer (Gradio)')
    parser.add_argument('--model', help=f"a model name of configs/cast/metafile.yml with "
                        f"official weights, or 'random' (default: {DEFAULT_MODEL})")
    parser.add_argument('--config', help='MMEngine config with a model holding a CAST backbone')
    parser.add_argument('--checkpoint', help="checkpoint of --config (path or URL) or 'random'")
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: 127.0.0.1, this machine only)')
    parser.add_argument('--port', type=int, default=7860, help='port (default: 7860)')
    parser.add_argument('--device', default='cpu', help='torch device: cpu or cuda')
    parser.add_argument('--max-upload-mb', type=float, default=20.,
                        help='largest accepted upload in MB (default: 20)')
    parser.add_argument('--short-side', type=int, default=0,
                        help='resize images to this shorter side (0: 224 for classification '
                        'backbones, 512 for segmentation backbones)')
    args = parser.parse_args(argv)
    if args.config is not None or args.checkpoint is not None:
        if args.model is not None:
            parser.error('give --model NAME or --config CFG --checkpoint CKPT, not both')
        if args.config is None or args.checkpoint is None:
            parser.error('--config and --checkpoint go together')
    else:
        args.model = args.model or DEFAULT_MODEL
        if args.model != RANDOM:
            try:
                if not model_info(args.model)['weights']:
                    parser.error(f'{args.model} has no official weights; pass --config and '
                                 '--checkpoint')
            except ValueError as err:
                parser.error(str(err))
    if args.max_upload_mb <= 0:
        parser.error(f'--max-upload-mb must be positive, got {args.max_upload_mb}')
    if args.short_side < 0 or 0 < args.short_side < MIN_SIDE:
        parser.error(f'--short-side must be 0 or at least {MIN_SIDE}, got {args.short_side}')
    return args


def selectable_models() -> List[str]:
    """Classification and MoCo models of the index that have official weights."""
    names = []
    for entry in index_models():
        tasks = {r.get('Task') for r in entry.get('Results') or []}
        if entry.get('Weights') and ('Image Classification' in tasks
                                     or 'moco' in entry['Name'].lower()):
            names.append(entry['Name'])
    return names


class LoadedModel:
    """A model ready for the page: its extractor, image size, classifier head and classes."""

    def __init__(self, label: str, config: str, checkpoint: str, device: str,
                 short_side: int = 0) -> None:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        cfg = Config.fromfile(config)
        init_default_scope(cfg.get('default_scope', 'cast_mm'))
        self.label = label
        self.random = checkpoint == RANDOM
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # not a line per initialised parameter
        try:
            self.model = build_model(cfg, checkpoint, device)
        finally:
            logger.setLevel(level)
        self.extractor = HierarchyExtractor(self.model, **hierarchy_settings(cfg))
        self.backbone = get_cast_backbone(self.model)
        self.short_side = short_side or SHORT_SIDE[self.backbone.mode]
        head = getattr(self.model, 'head', None)
        self.classifies = (self.backbone.mode == 'classification' and head is not None
                           and hasattr(head, 'num_classes')
                           and not getattr(self.model, 'with_neck', False))
        self.classes = self._class_names() if self.classifies else None

    def _class_names(self) -> List[str]:
        meta = getattr(self.model, 'dataset_meta', None) or {}
        if meta.get('classes'):
            return list(meta['classes'])
        num = self.model.head.num_classes
        if num == 1000:
            from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
            return list(IMAGENET_CATEGORIES)
        return [f'class {i}' for i in range(num)]

    def superpixels(self, image: np.ndarray, method: str, count: int) -> np.ndarray:
        """Superpixels of an RGB image: SEEDS with the model's preset or SLIC; ``count`` 0
        keeps the preset's budget."""
        seeds = self.extractor.seeds
        if method == SLIC:
            budget = count or seeds.budget(*image.shape[:2])
            return SLICSuperpixels(num_superpixels=budget, pixels_per_superpixel=None,
                                   channel_order='rgb').compute(image)
        if count:
            seeds = copy.copy(seeds)
            seeds.set_budget(count, None)
        return seeds.compute(image)

    @torch.no_grad()
    def analyse(self, image: np.ndarray, superpixels: np.ndarray):
        """``(hierarchy, top-5 {class: probability} or None)`` of one image."""
        spx = torch.as_tensor(superpixels).long()
        hierarchies, feats = self.extractor.run_batch([image], [spx])
        top5 = None
        if self.classifies:
            logits = self.model.head((feats.cls_feature, ))
            probs = logits.float().softmax(-1)[0].cpu()
            values, indices = probs.topk(min(5, probs.numel()))
            top5 = {self.classes[i]: float(v) for v, i in zip(values.tolist(), indices.tolist())}
        return hierarchies[0], top5


class ModelCache:
    """Models by page label, loaded once (server-wide: weights are not visitor data)."""

    def __init__(self, device: str, short_side: int, custom: Optional[Tuple[str, str]] = None,
                 capacity: int = 2) -> None:
        self.device, self.short_side, self.custom = device, short_side, custom
        self.capacity = capacity
        self.models: Dict[str, LoadedModel] = {}
        self.lock = threading.Lock()

    def get(self, label: str) -> LoadedModel:
        with self.lock:
            if label not in self.models:
                if label == RANDOM:
                    config, checkpoint = model_info(DEFAULT_MODEL)['config'], RANDOM
                elif self.custom is not None and label == self.custom_label:
                    config, checkpoint = self.custom
                else:
                    info = model_info(label)
                    if not info['weights']:
                        raise ValueError(f'{label} has no official weights')
                    config, checkpoint = info['config'], info['weights']
                while len(self.models) >= self.capacity:
                    self.models.pop(next(iter(self.models)))
                self.models[label] = LoadedModel(label, config, checkpoint, self.device,
                                                 self.short_side)
            return self.models[label]

    @property
    def custom_label(self) -> Optional[str]:
        if self.custom is None:
            return None
        return f'{osp.basename(self.custom[0])} + {osp.basename(self.custom[1])}'


# ----------------------------------------------------------------------------- images
class BadImage(ValueError):
    """An upload that is not a usable image; the message is shown in the page."""


def read_image(path: str) -> Tuple[np.ndarray, List[str]]:
    """An uploaded file as ``H x W x 3`` uint8 RGB and notes on what was converted.

    Raises:
        BadImage: empty file, not an image, unreadable or too many pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError
    if osp.getsize(path) == 0:
        raise BadImage('the file is empty (0 bytes)')
    notes = []
    try:
        with Image.open(path) as img:
            if getattr(img, 'n_frames', 1) > 1:
                notes.append(f'the file holds {img.n_frames} frames: the first one is shown')
            img.load()
            img = ImageOps.exif_transpose(img)
            array = _to_rgb(img, notes)
    except UnidentifiedImageError:
        raise BadImage('this file is not an image (use PNG, JPEG, BMP, TIFF, WebP or GIF)')
    except Image.DecompressionBombError as err:
        raise BadImage(f'the image has too many pixels ({err})')
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImage(f'the image cannot be decoded ({err}); the file may be truncated')
    return array, notes


def _to_rgb(img, notes: List[str]) -> np.ndarray:
    from PIL import Image
    mode = img.mode
    if mode in ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I', 'F'):
        array = np.asarray(img).astype(np.float64)
        if mode.startswith('I;16'):
            array = array / 65535. * 255.
            notes.append('16-bit grey image: scaled to 8 bits and copied to three channels')
        else:
            low, high = float(array.min()), float(array.max())
            array = (array - low) / max(high - low, 1e-12) * 255.
            notes.append(f'{mode!r} image (32-bit): values {low:g}..{high:g} stretched to '
                         '0..255 and copied to three channels')
        grey = np.clip(array.round(), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ('RGBA', 'LA', 'PA') or (mode == 'P' and 'transparency' in img.info):
        rgba = img.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        notes.append('transparent image: composited over white')
        return np.asarray(Image.alpha_composite(background, rgba).convert('RGB'))
    if mode in ('L', '1'):
        notes.append('grey image: copied to three channels')
    elif mode != 'RGB':
        notes.append(f'{mode} image converted to RGB')
    return np.asarray(img.convert('RGB'))


def fit_image(image: np.ndarray, short_side: int) -> Tuple[np.ndarray, List[str]]:
    """Resize so the shorter side is ``short_side``; refuse tiny or very elongated images."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise BadImage(f'the image is {width} x {height} pixels: at least {MIN_SIDE} a side, '
                       'please')
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise BadImage(f'the image is {width} x {height} pixels: sides longer than '
                       f'{MAX_ASPECT:g} times the shorter side are not supported (crop it)')
    if min(height, width) == short_side:
        return np.ascontiguousarray(image), []
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(image, size,
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return resized, [f'resized from {width} x {height} to {size[0]} x {size[1]} (shorter side '
                     f'{short_side}, the size the model works at)']


def example_image(name: str) -> np.ndarray:
    """A photograph bundled with scikit-image, by one of the names of ``EXAMPLES``."""
    if name not in EXAMPLES:
        raise BadImage(f'unknown example {name!r}')
    from skimage import data
    return getattr(data, name)()


# ----------------------------------------------------------------------------- page logic
class Explorer:
    """What the page does, without Gradio objects. A visitor's session state is the dict
    :meth:`compute` returns (image, superpixels, hierarchy, its :class:`HierarchyView`, the
    clicked point, the files of the picture and of the hierarchy)."""

    def __init__(self, models: ModelCache, out_dir: str) -> None:
        self.models = models
        self.out_dir = out_dir

    def compute(self, image: np.ndarray, notes: List[str], model_label: str, method: str,
                count: int) -> dict:
        model = self.models.get(model_label)
        image, resize_notes = fit_image(image, model.short_side)
        start = time.perf_counter()
        superpixels = model.superpixels(image, method, int(count or 0))
        hierarchy, top5 = model.analyse(image, superpixels)
        print(f'{image.shape[1]} x {image.shape[0]} image, {model_label}: superpixels, model and '
              f'hierarchy in {1000 * (time.perf_counter() - start):.0f} ms', flush=True)
        return dict(image=image, superpixels=superpixels, hierarchy=hierarchy, top5=top5,
                    view=HierarchyView(image, hierarchy, TILE_SIZE), point=None,
                    notes=notes + resize_notes, npz=None, figure=None)

    def render(self, state: dict, alpha: float, boundaries: bool) -> str:
        """Draw the picture of ``state`` into a new PNG file (the page shows it and offers
        it for download); return its path."""
        figure = state['view'].render(float(alpha), bool(boundaries), state['point'])
        path = self._new_file('hierarchy.png')
        # OpenCV's fast PNG level: several times quicker than Pillow's default, exact colours.
        cv2.imwrite(path, np.ascontiguousarray(figure[..., ::-1]),
                    [cv2.IMWRITE_PNG_COMPRESSION, 1])
        state['figure'] = path
        return path

    def click(self, state: dict, panel_xy) -> bool:
        point = state['view'].locate(int(panel_xy[0]), int(panel_xy[1]))
        if point is None:
            return False
        state['point'] = point
        return True

    def write_npz(self, state: dict) -> str:
        path = self._new_file('hierarchy.npz')
        save_hierarchy(path, state['hierarchy'], state['image'], state['superpixels'])
        return path

    def _new_file(self, name: str) -> str:
        self._clean()
        folder = osp.join(self.out_dir, uuid.uuid4().hex)
        os.makedirs(folder)
        return osp.join(folder, name)

    def _clean(self, max_age_s: float = 3600.) -> None:
        now = time.time()
        for entry in os.scandir(self.out_dir):
            try:  # another request may be cleaning up too
                if now - entry.stat().st_mtime > max_age_s:
                    for file in os.scandir(entry.path):
                        os.remove(file.path)
                    os.rmdir(entry.path)
            except OSError:
                pass


def path_markdown(state: Optional[dict]) -> str:
    """The clicked point's segments as a Markdown table."""
    if not state or state['point'] is None:
        return 'Click a point of the picture to follow its segments from part to whole.'
    x, y = state['point']
    lines = [f'**Point ({x}, {y})**, part to whole:', '',
             '| level | segment | pixels | share of the image |', '|---|---|---|---|']
    for seg in state['view'].path_at(x, y):
        lines.append(f'| {html.escape(seg.name)} | {seg.segment} | {seg.pixels} | '
                     f'{100 * seg.share:.1f}% |')
    return '\n'.join(lines)


def status_markdown(state: Optional[dict], error: Optional[str] = None) -> str:
    if error is not None:
        return f'**{html.escape(error)}**'
    if not state:
        return 'Upload an image or pick an example.'
    height, width = state['image'].shape[:2]
    counts = ', '.join(str(n) for n in state['view'].num_segments)
    text = f'{width} x {height} pixels; segments per level: {counts}.'
    if state['notes']:
        text += ' Note: ' + '; '.join(html.escape(n) for n in state['notes']) + '.'
    return text


def model_note(label: str) -> str:
    if label == RANDOM:
        return RANDOM_NOTE
    return f'Model: **{html.escape(label)}**.'


# ----------------------------------------------------------------------------- Gradio page
def build_demo(explorer: Explorer, model_labels: List[str], default_label: str):
    import gradio as gr

    def classes_update(state):
        if state and state['top5'] is not None:
            return gr.update(value=state['top5'], visible=True)
        return gr.update(value=None, visible=False)

    def show(state, alpha, boundaries, error=None):
        figure = explorer.render(state, alpha, boundaries) if state else None
        return (figure, status_markdown(state, error), classes_update(state),
                path_markdown(state), state)

    def run(image, notes, model_label, method, count, alpha, boundaries, state):
        try:
            explorer.models.get(model_label)
        except Exception as err:  # a failed download, a broken checkpoint: say so, keep serving
            return show(state, alpha, boundaries,
                        f'Cannot load the model {model_label}: {type(err).__name__}: {err}')
        try:
            new = explorer.compute(image, notes, model_label, method, count)
        except BadImage as err:
            return show(state, alpha, boundaries, f'Cannot use this image: {err}')
        return show(new, alpha, boundaries)

    def on_upload(file, model_label, method, count, alpha, boundaries, state):
        if file is None:
            return show(state, alpha, boundaries)
        try:
            image, notes = read_image(file)
        except BadImage as err:
            return show(state, alpha, boundaries, f'Cannot use this image: {err}')
        return run(image, notes, model_label, method, count, alpha, boundaries, state)

    def on_example(name, model_label, method, count, alpha, boundaries, state):
        try:
            image = example_image(name)
        except BadImage as err:
            return show(state, alpha, boundaries, f'Cannot use this image: {err}')
        return run(image, [f'example photograph {name!r} (scikit-image)'], model_label,
                   method, count, alpha, boundaries, state)

    def on_settings(model_label, method, count, alpha, boundaries, state):
        if not state:
            return show(state, alpha, boundaries)
        # the image as the last model saw it (the original upload is not kept)
        return run(state['image'], state['notes'], model_label, method, count, alpha,
                   boundaries, state)

    def on_redraw(alpha, boundaries, state):
        return (explorer.render(state, alpha, boundaries) if state else None), state

    def on_click(alpha, boundaries, state, evt: gr.SelectData):
        if not state or not explorer.click(state, evt.index):
            return gr.update(), path_markdown(state), state
        return explorer.render(state, alpha, boundaries), path_markdown(state), state

    def png_download(state):
        if not state or state.get('figure') is None:
            return gr.update(value=None, interactive=False)
        return gr.update(value=state['figure'], interactive=True)

    def npz_download(state):
        if not state:
            return gr.update(value=None, interactive=False)
        if state['npz'] is None:
            state['npz'] = explorer.write_npz(state)
        return gr.update(value=state['npz'], interactive=True)

    with gr.Blocks(title='CAST hierarchy explorer', analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        gr.Markdown('## CAST hierarchy explorer\nSuperpixels and the four levels of the '
                    "part-to-whole hierarchy CAST's graph pooling builds. Colours nest: a "
                    "segment's parts take shades of its colour. Click a point to follow it.")
        note = gr.Markdown(model_note(default_label), elem_id='model-note')
        state = gr.State(None, time_to_live=3600)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                upload = gr.File(label='Upload an image', type='filepath', elem_id='upload')
                example = gr.Dropdown(list(EXAMPLES), value=EXAMPLES[0],
                                      label='or an example photograph', elem_id='example')
                use_example = gr.Button('Show example', elem_id='use-example')
            with gr.Column(scale=1, min_width=240):
                model = gr.Dropdown(model_labels, value=default_label, label='Model',
                                    elem_id='model')
                method = gr.Radio([SEEDS, SLIC], value=SEEDS, label='Superpixels',
                                  elem_id='method')
                count = gr.Slider(0, 2048, value=0, step=1, elem_id='count',
                                  label="Number of superpixels (0: the model preset's)")
            with gr.Column(scale=1, min_width=240):
                alpha = gr.Slider(0., 1., value=0.5, step=0.05, label='Blend (0: image, '
                                  '1: segment colours)', elem_id='alpha')
                boundaries = gr.Checkbox(True, label='Segment boundaries', elem_id='boundaries')
                with gr.Row():
                    png = gr.DownloadButton('Picture (PNG)', interactive=False,
                                            elem_id='download-png')
                    npz = gr.DownloadButton('Hierarchy (.npz)', interactive=False,
                                            elem_id='download-npz')
        status = gr.Markdown(status_markdown(None), elem_id='status')
        figure = gr.Image(label='image | superpixels | levels 1-4 (click a point)',
                          type='filepath', interactive=False, elem_id='figure', show_label=False,
                          buttons=['fullscreen'])
        with gr.Row():
            path = gr.Markdown(path_markdown(None), elem_id='path')
            classes = gr.Label(num_top_classes=5, label='Predicted classes (top 5)',
                               visible=False, elem_id='classes')

        outputs = [figure, status, classes, path, state]
        settings = [model, method, count, alpha, boundaries, state]

        def downloads(event):
            event.then(png_download, state, png).then(npz_download, state, npz)

        # the file box is emptied once read, ready for the next upload
        downloads(upload.upload(on_upload, [upload] + settings, outputs).then(
            lambda: None, None, upload))
        downloads(use_example.click(on_example, [example] + settings, outputs))
        downloads(method.change(on_settings, settings, outputs))
        downloads(count.release(on_settings, settings, outputs))
        downloads(model.change(model_note, model, note)
                  .then(on_settings, settings, outputs))
        for control, trigger in ((alpha, 'release'), (boundaries, 'change')):
            getattr(control, trigger)(on_redraw, [alpha, boundaries, state],
                                      [figure, state]).then(png_download, state, png)
        figure.select(on_click, [alpha, boundaries, state], [figure, path, state]).then(
            png_download, state, png)
    return demo


def main(argv=None) -> None:
    args = parse_args(argv)
    cast_mm.setup_env()  # as the other tools: the compatibility measures of cast_mm.compat
    custom = (args.config, args.checkpoint) if args.config else None
    models = ModelCache(args.device, args.short_side, custom)
    if custom is not None:
        default_label = models.custom_label
        labels = [default_label, RANDOM]
    else:
        default_label = args.model
        labels = selectable_models() + [RANDOM]
        if default_label not in labels:
            labels.insert(0, default_label)
    print(f'loading {default_label} ...', flush=True)
    models.get(default_label)  # download and build before the first visitor
    out_dir = tempfile.mkdtemp(prefix='cast_mm_explorer_')
    demo = build_demo(Explorer(models, out_dir), labels, default_label)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=args.host, server_port=args.port, show_error=True,
                max_file_size=int(args.max_upload_mb * 1024 * 1024), ssr_mode=False,
                share=False, inbrowser=False, allowed_paths=[out_dir],
                state_session_capacity=MAX_SESSIONS,
                footer_links=[])


if __name__ == '__main__':
    main()

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

``--model`` names a classification or MoCo-v3 model of ``configs/cast/metafile.yml`` with
official weights (downloaded on first use, then cached); the page can switch between them.
Every model sees an image as at test time: :class:`cast_mm.apis.HierarchyExtractor` runs its
config's test pipeline (resize, crop, the config's SEEDS preset) and data preprocessor, so the
superpixels and the classes are those of mmpretrain's ``ImageClassificationInferencer`` (and
of ``mmseg.apis.inference_model`` in whole mode for a segmentation ``--config``); this file is
page code only. The server listens on
127.0.0.1 unless ``--host`` says otherwise, refuses uploads above ``--max-upload-mb``, reads no
file path sent by the page, and keeps every visitor's image and hierarchy in that visitor's
session.
"""
import argparse
import html
import os
import os.path as osp
import tempfile
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple, Union

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import cast_mm  # noqa: E402
from cast_mm.apis import HierarchyExtractor, init_model, save_hierarchy  # noqa: E402
from cast_mm.checkpoints import index_models, model_info  # noqa: E402
from cast_mm.utils import ImageFileError  # noqa: E402
from cast_mm.visualization import HierarchyView  # noqa: E402

DEFAULT_MODEL = 'cast-s_deit_in1k'
RANDOM = 'random'
#: Photographs bundled with scikit-image (no download), offered as examples.
EXAMPLES = ('astronaut', 'chelsea', 'coffee', 'rocket')
#: Longest side of each tile of the picture in the page.
TILE_SIZE = 320
#: Visitor sessions kept at once (each holds one image and its hierarchy); the oldest go first.
MAX_SESSIONS = 64
SEEDS, SLIC = 'SEEDS (model preset)', 'SLIC'
#: OpenCV's PNG options for the picture: no filter, no deflate (see ``Explorer.render``).
PNG_STORED = [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
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
    return args


def selectable_models() -> List[str]:
    """Classification and MoCo-v3 models of the index that have official weights."""
    names = []
    for entry in index_models():
        tasks = {r.get('Task') for r in entry.get('Results') or []}
        if entry.get('Weights') and ('Image Classification' in tasks
                                     or 'mocov3' in entry['Name'].lower()):
            names.append(entry['Name'])
    return names


def superpixel_settings(method: str, count: int) -> Optional[dict]:
    """``superpixel_cfg`` of the extractor for the page's controls: the config's SEEDS step as
    it is (None), with ``count`` superpixels, or SLIC with the SEEDS presets' budget (one
    superpixel per 256 pixels: 196 at 224 x 224) or ``count``."""
    budget = dict(num_superpixels=count, pixels_per_superpixel=None) if count else {}
    if method == SLIC:
        return dict(type='cast_mm.SLICSuperpixels', **budget)
    return budget or None


class LoadedModel:
    """A model ready for the page: its extractors (one per superpixel setting) and classes."""

    def __init__(self, label: str, config: str, checkpoint: Optional[str],
                 device: str) -> None:
        self.label = label
        torch.manual_seed(0)  # 'random': the same weights every time
        self.model = init_model(config, checkpoint, device)
        self.extractors: Dict[Tuple[str, int], HierarchyExtractor] = {}
        if not self.extractor(SEEDS, 0).follows_config:
            raise ValueError(f'{label}: the explorer shows a model as its config prepares images '
                             '(test pipeline and data preprocessor), and this config has none '
                             '(a bare backbone?); draw it with tools/visualize_hierarchy.py')
        head = getattr(self.model, 'head', None)
        self.classes = self._class_names(head.num_classes) if hasattr(head, 'num_classes') \
            else None

    def extractor(self, method: str, count: int) -> HierarchyExtractor:
        key = (method, int(count or 0))
        if key not in self.extractors:
            self.extractors[key] = HierarchyExtractor(self.model,
                                                      superpixel_cfg=superpixel_settings(*key))
        return self.extractors[key]

    def _class_names(self, num: int) -> List[str]:
        meta = getattr(self.model, 'dataset_meta', None) or {}
        if meta.get('classes'):
            return list(meta['classes'])
        if num == 1000:
            from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
            return list(IMAGENET_CATEGORIES)
        return [f'class {i}' for i in range(num)]

    def top5(self, scores: Optional[torch.Tensor]) -> Optional[Dict[str, float]]:
        """``{class: probability}`` of the five best classes (None for other models)."""
        if scores is None or self.classes is None:
            return None
        values, indices = scores.topk(min(5, scores.numel()))
        return {self.classes[i]: float(v) for v, i in zip(values.tolist(), indices.tolist())}


class ModelCache:
    """Models by page label, loaded once (server-wide: weights are not visitor data)."""

    def __init__(self, device: str, custom: Optional[Tuple[str, str]] = None,
                 capacity: int = 2) -> None:
        self.device, self.custom = device, custom
        self.capacity = capacity
        self.models: Dict[str, LoadedModel] = {}
        self.lock = threading.Lock()

    def get(self, label: str) -> LoadedModel:
        with self.lock:
            if label not in self.models:
                if label == RANDOM:
                    config, checkpoint = model_info(DEFAULT_MODEL)['config'], None
                elif self.custom is not None and label == self.custom_label:
                    config, checkpoint = self.custom
                    checkpoint = None if checkpoint == RANDOM else checkpoint
                else:
                    config, checkpoint = label, None  # a model name: its official weights
                while len(self.models) >= self.capacity:
                    self.models.pop(next(iter(self.models)))
                self.models[label] = LoadedModel(label, config, checkpoint, self.device)
            return self.models[label]

    @property
    def custom_label(self) -> Optional[str]:
        if self.custom is None:
            return None
        return f'{osp.basename(self.custom[0])} + {osp.basename(self.custom[1])}'


# ----------------------------------------------------------------------------- images
class BadImage(ValueError):
    """An upload that is not a usable image; the message is shown in the page."""


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
    clicked point, the files of the picture and of the hierarchy).

    Pictures and hierarchy files are written into ``out_dir``, one new folder per file; the
    page serves them from there (inside Gradio's cache folder, so Gradio neither hashes nor
    copies them).
    """

    def __init__(self, models: ModelCache, out_dir: str) -> None:
        self.models = models
        self.out_dir = out_dir

    def compute(self, source: Union[str, np.ndarray], notes: List[str], model_label: str,
                method: str, count: int) -> dict:
        """A new visitor state for ``source`` (an uploaded file's path or an RGB array).

        Raises:
            BadImage: the file or array is not an image the model can use.
        """
        model = self.models.get(model_label)
        start = time.perf_counter()
        try:
            result = model.extractor(method, count).run(source)[0]
        except (ImageFileError, ValueError) as err:
            raise BadImage(str(err)) from err
        print(f'{result.image.shape[1]} x {result.image.shape[0]} image, {model_label}: '
              f'superpixels, model and hierarchy in {1000 * (time.perf_counter() - start):.0f} '
              'ms', flush=True)
        state = dict(source=source, given_notes=notes, image=result.image,
                     superpixels=result.superpixels, hierarchy=result.hierarchy,
                     top5=model.top5(result.scores),
                     view=HierarchyView(result.image, result.hierarchy, TILE_SIZE), point=None,
                     notes=notes + result.notes, npz=None, figure=None)
        return state

    def render(self, state: dict, alpha: float, boundaries: bool) -> str:
        """Draw the picture of ``state`` into a new PNG file (the page shows it and offers
        it for download); return its path."""
        figure = state['view'].render(float(alpha), bool(boundaries), state['point'])
        path = self._new_file('hierarchy.png')
        # Exact colours, stored without deflate: about 1 ms instead of 30 at zlib's fastest
        # level, for a file of 3 bytes a pixel (~1 MB at 224, ~2 MB at 512) that the browser
        # reads and decodes in a few milliseconds.
        cv2.imwrite(path, cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), PNG_STORED)
        state['figure'] = path
        return path

    def click(self, state: dict, panel_xy) -> bool:
        point = state['view'].locate(int(panel_xy[0]), int(panel_xy[1]))
        if point is None:
            return False
        state['point'] = point
        return True

    def write_npz(self, state: dict) -> str:
        """Write the hierarchy of ``state`` (and its image and superpixels) into a new
        ``.npz`` file (:func:`cast_mm.apis.save_hierarchy`); return its path."""
        path = self._new_file('hierarchy.npz')
        save_hierarchy(path, state['hierarchy'], state['image'], state['superpixels'])
        state['npz'] = path
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

    def download(path):
        return gr.update(value=path, interactive=path is not None)

    def show(state, alpha, boundaries, error=None):
        """Every output of a computation, in one event: picture, texts, the picture's
        download and an emptied file box first; then, while the browser draws, the hierarchy
        file and its download."""
        figure = explorer.render(state, alpha, boundaries) if state else None
        yield (figure, status_markdown(state, error), classes_update(state),
               path_markdown(state), state, download(figure),
               download(state['npz'] if state else None), None)
        if state and state['npz'] is None:
            yield (gr.skip(), ) * 6 + (download(explorer.write_npz(state)), gr.skip())

    def run(source, notes, model_label, method, count, alpha, boundaries, state):
        try:
            explorer.models.get(model_label)
        except Exception as err:  # a failed download, a broken checkpoint: say so, keep serving
            yield from show(state, alpha, boundaries,
                            f'Cannot load the model {model_label}: {type(err).__name__}: {err}')
            return
        try:
            new = explorer.compute(source, notes, model_label, method, count)
        except BadImage as err:
            yield from show(state, alpha, boundaries, f'Cannot use this image: {err}')
            return
        yield from show(new, alpha, boundaries)

    def on_upload(file, model_label, method, count, alpha, boundaries, state):
        if file is None:
            yield from show(state, alpha, boundaries)
        else:
            yield from run(file, [], model_label, method, count, alpha, boundaries, state)

    def on_example(name, model_label, method, count, alpha, boundaries, state):
        try:
            image = example_image(name)
        except BadImage as err:
            yield from show(state, alpha, boundaries, f'Cannot use this image: {err}')
            return
        yield from run(image, [f'example photograph {name!r} (scikit-image)'], model_label,
                       method, count, alpha, boundaries, state)

    def on_settings(model_label, method, count, alpha, boundaries, state):
        if not state:
            yield from show(state, alpha, boundaries)
        else:  # the visitor's own upload (or example) again, through the chosen model and settings
            yield from run(state['source'], state['given_notes'], model_label, method, count,
                           alpha, boundaries, state)

    def on_redraw(alpha, boundaries, state):
        figure = explorer.render(state, alpha, boundaries) if state else None
        return figure, state, download(figure)

    def on_click(alpha, boundaries, state, evt: gr.SelectData):
        if not state or not explorer.click(state, evt.index):
            return gr.update(), path_markdown(state), state, gr.update()
        figure = explorer.render(state, alpha, boundaries)
        return figure, path_markdown(state), state, download(figure)

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

        # the file box is emptied by the event that reads it, ready for the next upload
        outputs = [figure, status, classes, path, state, png, npz, upload]
        settings = [model, method, count, alpha, boundaries, state]
        # one event per action, its progress shown on the picture only; re-drawing takes a few
        # milliseconds and shows none. An upload (or example) while the hierarchy file of the
        # previous one is being written waits for it instead of being dropped.
        computing = dict(show_progress_on=[figure])
        drawing = dict(show_progress='hidden')

        upload.upload(on_upload, [upload] + settings, outputs, trigger_mode='multiple',
                      **computing)
        use_example.click(on_example, [example] + settings, outputs, trigger_mode='multiple',
                          **computing)
        method.change(on_settings, settings, outputs, **computing)
        count.release(on_settings, settings, outputs, **computing)
        model.change(model_note, model, note).then(on_settings, settings, outputs, **computing)
        for control, trigger in ((alpha, 'release'), (boundaries, 'change')):
            getattr(control, trigger)(on_redraw, [alpha, boundaries, state], [figure, state, png],
                                      **drawing)
        figure.select(on_click, [alpha, boundaries, state], [figure, path, state, png],
                      **drawing)
    return demo


def main(argv=None) -> None:
    args = parse_args(argv)
    cast_mm.setup_env()  # as the other tools: the compatibility measures of cast_mm.compat
    # all cores but one for torch: the server, Gradio's queue and the browser keep theirs
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    custom = (args.config, args.checkpoint) if args.config else None
    models = ModelCache(args.device, custom)
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
    # Gradio's cache folder (GRADIO_TEMP_DIR, a new one unless set): files written inside it
    # are served as they are, without a hash and a copy per picture
    cache = os.environ.setdefault('GRADIO_TEMP_DIR', tempfile.mkdtemp(prefix='cast_mm_explorer_'))
    os.makedirs(cache, exist_ok=True)
    out_dir = tempfile.mkdtemp(prefix='pictures_', dir=cache)
    demo = build_demo(Explorer(models, out_dir), labels, default_label)
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=args.host, server_port=args.port, show_error=True,
                max_file_size=int(args.max_upload_mb * 1024 * 1024), ssr_mode=False,
                share=False, inbrowser=False, allowed_paths=[out_dir],
                state_session_capacity=MAX_SESSIONS,
                footer_links=[])


if __name__ == '__main__':
    main()

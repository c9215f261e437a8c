"""How fast the hierarchy explorer feels, measured from a real (headless) browser.

Command lines: ``python3 tools/analysis/explorer_timing.py [--case ...]`` (JSON on stdout) and
the benchmark's ``explorer`` section (``tools/analysis/benchmark.py --sections explorer``).

Starts ``tools/hierarchy_explorer.py`` on a free loopback port, drives it with Chromium through
Playwright and reports milliseconds:

* ``upload_to_picture_ms``: from handing the browser a PNG to the new picture being displayed
  (upload, decoding, superpixels, forward pass, hierarchy, drawing, transfer);
* ``click_redraw_ms``: from a click on the picture to the re-drawn picture with the highlighted
  path (no model run);
* ``pipeline_ms``: superpixels, forward pass and hierarchy of the same uploads, as the
  explorer logs them (the share of the upload time that is not the page's).

Cases: ``classification`` (CAST-S classifier, random weights, a 224 x 224 photo) and
``segmentation`` (CAST-S segmentation-mode backbone of ``configs/cast/cast-s_ade20k.py``,
random weights, a 512 x 512 photo). The helpers here (:func:`start_explorer`,
:func:`launch_chromium`, :class:`ExplorerPage`) also drive the browser tests.
"""
import os
import os.path as osp
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

#: The repository this library lives in (``tools/analysis/cast_analysis``).
REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TOOL = osp.join(REPO, 'tools', 'hierarchy_explorer.py')
#: Chromium executables looked up on ``PATH``, in this order, when none is given.
CHROMIUM_NAMES = ('chromium', 'chromium-browser', 'google-chrome')
#: Flags for a headless Chromium that talks to nothing but the page.
CHROMIUM_ARGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync')
CASES = dict(
    classification=dict(args=('--model', 'random'), image_size=224),
    segmentation=dict(args=('--config', 'configs/cast/cast-s_ade20k.py', '--checkpoint',
                            'random'), image_size=512),
)
#: Colour of the outline of clicked segments (HierarchyView's default highlight colour).
HIGHLIGHT = (255, 230, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_explorer(args: Sequence[str], env: Optional[Dict[str, str]] = None,
                   timeout: float = 300., log_path: Optional[str] = None):
    """Start the explorer on a free loopback port; return ``(process, url)`` once it answers.

    Raises:
        RuntimeError: it exited or did not answer in time (its output is in the message).
    """
    port = free_port()
    log = (open(log_path, 'w+') if log_path else
           tempfile.NamedTemporaryFile('w+', prefix='explorer_', suffix='.log', delete=False))
    run_env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    proc = subprocess.Popen([sys.executable, TOOL, *args, '--host', '127.0.0.1', '--port',
                             str(port)], cwd=REPO, env=run_env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    proc.log = log
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop_explorer(proc)
    log.seek(0)
    raise RuntimeError(f'the explorer did not start ({" ".join(args)}):\n{log.read()[-4000:]}')


def stop_explorer(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def find_chromium(executable: Optional[str] = None) -> str:
    """The Chromium to drive: ``executable`` (a path, or a name on ``PATH``) if given, else the
    first of :data:`CHROMIUM_NAMES` on ``PATH``.

    Raises:
        FileNotFoundError: none found; the message names the ``--chromium`` option.
    """
    if executable:
        found = shutil.which(executable)
        if found is None:
            raise FileNotFoundError(f'--chromium {executable}: no such executable file')
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise FileNotFoundError(
        f'no Chromium on PATH (looked for {", ".join(CHROMIUM_NAMES)}): install one '
        '(apt-get install chromium) or pass its path with --chromium PATH')


def launch_chromium(playwright, executable: Optional[str] = None):
    """A headless Chromium (the system's, not a Playwright download; :func:`find_chromium`)
    with a fresh profile."""
    return playwright.chromium.launch(executable_path=find_chromium(executable), headless=True,
                                      args=list(CHROMIUM_ARGS))


class ExplorerPage:
    """The explorer's page in a browser, with the few actions tests and timings need."""

    def __init__(self, browser, url: str, width: int = 1400, height: int = 1000) -> None:
        self.context = browser.new_context(viewport=dict(width=width, height=height),
                                           accept_downloads=True)
        self.page = self.context.new_page()
        self.page.goto(url)
        self.page.wait_for_selector('#upload input[type=file]', state='attached')

    def close(self) -> None:
        self.context.close()

    def figure_src(self) -> Optional[str]:
        return self.page.evaluate(
            "() => { const i = document.querySelector('#figure img'); return i ? i.src : null }")

    def wait_new_figure(self, previous: Optional[str], timeout_ms: float = 120000) -> float:
        """Wait until the picture's source differs from ``previous`` and it is displayed;
        return the milliseconds since :meth:`start_clock` (measured in the page)."""
        handle = self.page.wait_for_function(
            """(old) => { const i = document.querySelector('#figure img');
                          return i && i.src !== old && i.complete && i.naturalWidth > 0
                                 && performance.now() - (window.__explorerClock || 0) }""",
            arg=previous, timeout=timeout_ms, polling='raf')
        return float(handle.json_value())

    def start_clock(self) -> None:
        self.page.evaluate('() => { window.__explorerClock = performance.now() }')

    def upload(self, path: str, timeout_ms: float = 120000) -> float:
        """Upload a file, wait for the new picture; return milliseconds from the upload."""
        previous = self.figure_src()
        self.start_clock()
        self.page.set_input_files('#upload input[type=file]', path)
        return self.wait_new_figure(previous, timeout_ms)

    def figure(self) -> np.ndarray:
        """The displayed picture as ``H x W x 3`` RGB, as the server sent it."""
        body = self.page.request.get(self.figure_src()).body()
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        return image[..., ::-1].copy()

    def click_figure(self, x: float, y: float, timeout_ms: float = 60000) -> float:
        """Click picture pixel ``(x, y)`` (natural size), wait for the re-drawn picture; return
        milliseconds from the click."""
        previous = self.figure_src()
        img = self.page.locator('#figure img')
        img.scroll_into_view_if_needed()
        box = img.bounding_box()
        natural = self.page.evaluate(
            "() => { const i = document.querySelector('#figure img');"
            " return [i.naturalWidth, i.naturalHeight] }")
        self.start_clock()
        self.page.mouse.click(box['x'] + (x + .5) * box['width'] / natural[0],
                              box['y'] + (y + .5) * box['height'] / natural[1])
        return self.wait_new_figure(previous, timeout_ms)

    def text(self, element_id: str) -> str:
        return self.page.locator(f'#{element_id}').inner_text()

    def download(self, element_id: str, path: str) -> str:
        with self.page.expect_download() as info:
            self.page.locator(f'#{element_id}').click()
        info.value.save_as(path)
        return path


def photo(size: int) -> np.ndarray:
    """A ``size x size`` RGB photograph bundled with scikit-image (the astronaut)."""
    from skimage import data
    return cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def measure_explorer(case: str = 'classification', repeats: int = 5, clicks: int = 5,
                     chromium: Optional[str] = None) -> dict:
    """Start the explorer for ``case`` (a key of ``CASES``), time uploads and clicks in Chromium
    (``chromium``: its executable, else found by :func:`find_chromium`).

    Returns:
        dict: ``case``, ``image_size``, ``upload_to_picture_ms`` and ``click_redraw_ms``, each
        ``{'median': ..., 'all': [...]}`` (the first, warm-up upload is left out).
    """
    from playwright.sync_api import sync_playwright
    chromium = find_chromium(chromium)
    spec = CASES[case]
    folder = tempfile.mkdtemp(prefix='explorer_timing_')
    paths = []
    for i in range(repeats + 1):  # distinct files: every upload runs the whole pipeline
        path = osp.join(folder, f'photo{i}.png')
        image = np.roll(photo(spec['image_size']), 7 * i, axis=1)
        cv2.imwrite(path, image[..., ::-1])
        paths.append(path)
    proc, url = start_explorer(spec['args'])
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright, chromium)
            page = ExplorerPage(browser, url)
            uploads: List[float] = []
            for i, path in enumerate(paths):
                elapsed = page.upload(path)
                if i:
                    uploads.append(elapsed)
            natural = page.figure().shape
            tile = (natural[1] - 5 * 4) // 6
            bar = natural[0] - tile
            redraws: List[float] = []
            for i in range(clicks):
                x = tile + 4 + (i * 37 + 11) % tile
                y = bar + (i * 53 + 17) % tile
                redraws.append(page.click_figure(x, y))
            page.close()
            browser.close()
        pipeline = pipeline_times(proc)[1:]
    finally:
        stop_explorer(proc)

    def summary(values):
        return dict(median=round(statistics.median(values), 1),
                    all=[round(v, 1) for v in values])

    return dict(case=case, image_size=spec['image_size'], upload_to_picture_ms=summary(uploads),
                click_redraw_ms=summary(redraws), pipeline_ms=summary(pipeline))


def pipeline_times(proc) -> List[float]:
    """Milliseconds of superpixels, forward pass and hierarchy of every image the explorer
    ``proc`` analysed so far, as it logged them."""
    proc.log.flush()
    proc.log.seek(0)
    return [float(ms) for ms in re.findall(r'hierarchy in (\d+) ms', proc.log.read())]

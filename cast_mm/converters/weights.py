"""Official CAST weights by URL or path: download once, verify, convert in memory.

The official checkpoints are files of the Hugging Face model repository ``twke/CAST``; their
URLs are :data:`DEFAULT_WEIGHTS_BASE` followed by the official file path (for example
``.../snapshots/deit/imagenet1k/cast_small/best_checkpoint.pth``). The environment variable
``CAST_MM_WEIGHTS_BASE`` replaces that base (a mirror, an offline cluster's file server): URLs
under the default base are then fetched from the same path under the new one.

Two MMEngine checkpoint loader schemes make every place that takes a checkpoint (``init_cfg`` of
type ``Pretrained``, ``load_from``, ``resume``, ``mmseg.apis.init_model``,
``mmpretrain.get_model(..., pretrained=True)``, ``tools/test.py``) accept official files:

* URLs under the official base (:func:`register_official_url_loader`, registered by
  ``import cast_mm``: only those URLs are concerned): downloaded once into torch hub's directory
  (``$TORCH_HOME/hub/checkpoints/cast_mm/<official path>``, ``TORCH_HOME`` defaults to
  ``~/.cache/torch``) with a progress bar, checked (the length the server announced, an HTML
  page instead of a file, a readable checkpoint in an official layout, the SHA-256 when the URL
  ends in ``#sha256=<hex>``); a bad download is removed from the cache and named in the error.
* local files (MMEngine's ``''`` scheme, :func:`register_local_file_loader`): read with the
  safe unpickler of :func:`~cast_mm.utils.checkpoint_file.read_checkpoint`; a file in an
  official layout is converted in memory, any other checkpoint is returned unchanged. This
  replaces MMEngine's loader of every local file, so it is applied by
  :func:`cast_mm.setup_env` (our tools and configs call it; see :mod:`cast_mm.compat`), not
  by ``import cast_mm``.
"""
import hashlib
import os
import os.path as osp
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from http.client import HTTPException
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from cast_mm.utils.checkpoint_file import (CheckpointError, CorruptCheckpointError, read_checkpoint,
                                           remember_source)
from cast_mm.utils.official_weights import DEFAULT_WEIGHTS_BASE, OFFICIAL_WEIGHTS, WEIGHTS_BASE_ENV
from .official import UnknownCheckpointLayout, convert_official_checkpoint, detect_layout

#: The CAST files of the official release: path under the base -> (layout, official family).
OFFICIAL_FILES: Dict[str, Tuple[str, str]] = OrderedDict(
    (path, (entry.layout, entry.family)) for path, entry in OFFICIAL_WEIGHTS.items())

_CHUNK = 1 << 20


class WeightsDownloadError(CheckpointError):
    """Downloading a checkpoint failed or gave something that is not the checkpoint."""


def weights_base() -> str:
    """The base URL of the official files: ``$CAST_MM_WEIGHTS_BASE`` or the default."""
    return (os.environ.get(WEIGHTS_BASE_ENV) or DEFAULT_WEIGHTS_BASE).rstrip('/')


def official_url(path: str) -> str:
    """The URL of an official file (``path`` under the base), e.g. for ``OFFICIAL_FILES``."""
    return f'{weights_base()}/{path.lstrip("/")}'


def split_url(url: str) -> Tuple[str, Optional[str]]:
    """``(url without fragment, expected sha256 or None)`` of ``url[#sha256=<hex>]``."""
    base, _, fragment = url.partition('#')
    if not fragment:
        return base, None
    match = re.fullmatch(r'sha256=([0-9a-fA-F]{64})', fragment)
    if match is None:
        raise ValueError(f'{url}: the only URL fragment understood is #sha256=<64 hex digits>, '
                         f'got #{fragment}')
    return base, match.group(1).lower()


def official_path(url: str) -> Optional[str]:
    """The path of ``url`` under the default or the configured base, or None."""
    url = split_url(url)[0]
    for base in (DEFAULT_WEIGHTS_BASE, weights_base()):
        if url.startswith(base + '/'):
            return url[len(base) + 1:]
    return None


def resolve_url(url: str) -> str:
    """Where to fetch ``url`` from: URLs under the default base move to the configured one."""
    url = split_url(url)[0]
    if url.startswith(DEFAULT_WEIGHTS_BASE + '/'):
        return weights_base() + url[len(DEFAULT_WEIGHTS_BASE):]
    return url


def cache_dir() -> str:
    """Where downloaded checkpoints are kept: ``<torch hub dir>/checkpoints/cast_mm``."""
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'cast_mm')


def cache_path(url: str) -> str:
    """The cache file of ``url``: its official path, or host and path for other URLs."""
    path = official_path(url)
    if path is None:
        parts = urllib.parse.urlsplit(split_url(url)[0])
        path = parts.netloc.replace(':', '_') + parts.path
    path = osp.normpath(urllib.parse.unquote(path)).lstrip('/')
    if path.startswith('..') or not path or path == '.':
        raise ValueError(f'cannot cache {url}: no file path in it')
    return osp.join(cache_dir(), path)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _progress_bar(total: Optional[int], enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the stack
        return None
    return tqdm(total=total, disable=not enabled, unit='B', unit_scale=True, unit_divisor=1024)


def download(url: str, dst: str, sha256: Optional[str] = None,
             progress: Optional[bool] = None, timeout: float = 60.) -> str:
    """Download ``url`` to ``dst`` through a temporary file in the same folder.

    Args:
        url (str): what to fetch.
        dst (str): the file to write (its folder is created).
        sha256 (str, optional): expected SHA-256 (hex) of the file.
        progress (bool, optional): draw a progress bar. Defaults to whether stderr is a
            terminal.
        timeout (float): seconds to wait for the server. Defaults to 60.

    Returns:
        str: ``dst``.

    Raises:
        WeightsDownloadError: HTTP error, unreachable server, an HTML page, fewer bytes than
            the server announced, or a hash mismatch. Nothing is left at ``dst``.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    os.makedirs(osp.dirname(dst), exist_ok=True)
    partial = f'{dst}.{os.getpid()}.partial'
    print(f'Downloading {url} to {dst}', file=sys.stderr)
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'cast_mm'})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            kind = response.headers.get('Content-Type', '')
            if 'text/html' in kind:
                raise WeightsDownloadError(
                    f'{url} is an HTML page ({kind}), not a checkpoint: an error or login page, '
                    "or a web page link such as Hugging Face's /blob/ instead of /resolve/")
            length = response.headers.get('Content-Length')
            length = int(length) if length and length.isdigit() else None
            digest = hashlib.sha256()
            received = 0
            bar = _progress_bar(length, progress)
            try:
                with open(partial, 'wb') as f:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                if bar is not None:
                    bar.close()
    except urllib.error.HTTPError as err:
        _remove(partial)
        raise WeightsDownloadError(f'downloading {url} failed: HTTP {err.code} {err.reason}')
    except (urllib.error.URLError, HTTPException, OSError) as err:
        _remove(partial)
        reason = getattr(err, 'reason', None) or err
        raise WeightsDownloadError(
            f'downloading {url} failed ({type(err).__name__}: {reason}); the file is truncated '
            f'if the connection broke. Set {WEIGHTS_BASE_ENV} to a reachable mirror of '
            f'{DEFAULT_WEIGHTS_BASE}, or download the file yourself and pass its path') from err
    if length is not None and received != length:
        _remove(partial)
        raise WeightsDownloadError(
            f'downloading {url} gave a truncated file: {received} of the {length} bytes the '
            'server announced')
    if sha256 is not None and digest.hexdigest() != sha256:
        _remove(partial)
        raise WeightsDownloadError(
            f'{url}: SHA-256 mismatch, expected {sha256}, got {digest.hexdigest()} (a corrupt '
            'download or a different file)')
    os.replace(partial, dst)
    return dst


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def official_layout(checkpoint: Any) -> Optional[str]:
    """The official layout of a loaded checkpoint, or None for anything else."""
    try:
        return detect_layout(checkpoint)
    except UnknownCheckpointLayout:
        return None


def _dataset_meta(converted) -> Optional[Dict]:
    """ImageNet class names for a 1000-way classifier (what mmpretrain's Inferencer shows)."""
    if converted.head is None or converted.head['weight'].shape[0] != 1000:
        return None
    try:
        from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    except ImportError:  # pragma: no cover - mmseg-only environments
        return None
    return dict(classes=tuple(IMAGENET_CATEGORIES))


def to_mmengine_checkpoint(checkpoint: Any, source: str, strict: bool = False) -> Any:
    """An official checkpoint converted to an MMEngine one; any other object unchanged.

    Args:
        checkpoint: what :func:`read_checkpoint` returned.
        source (str): the file or URL, for messages and ``meta.cast_mm.source``.
        strict (bool): raise when the file has an official wrapper layout but no CAST weights
            in it; otherwise return it unchanged (e.g. a ViT saved the same way by another
            project). Defaults to False.
    """
    layout = official_layout(checkpoint)
    if layout is None:
        return checkpoint
    try:
        converted = convert_official_checkpoint(checkpoint, layout=layout)
    except (UnknownCheckpointLayout, KeyError, AttributeError) as err:
        if not strict:
            return checkpoint
        raise CorruptCheckpointError(
            f'checkpoint {source} has the layout of an official {layout} checkpoint but no '
            f'CAST weights that convert: {err}') from err
    out = converted.to_mmengine(_dataset_meta(converted))
    out['meta']['cast_mm']['source'] = source
    remember_source(source, out['state_dict'])
    return out


def load_official_weights(url: str, map_location: Any = 'cpu',
                          progress: Optional[bool] = None) -> Dict[str, Any]:
    """Fetch (or take from the cache) an official checkpoint and convert it.

    Args:
        url (str): the file's URL, optionally ending in ``#sha256=<hex>``.
        map_location: as in ``torch.load``. Defaults to ``'cpu'``.
        progress (bool, optional): progress bar; defaults to whether stderr is a terminal.

    Returns:
        dict: an MMEngine checkpoint (``state_dict`` in cast_mm names and ``meta``).
    """
    rank, world_size = _dist_info()
    if world_size > 1 and rank != 0:
        _barrier()  # rank 0 downloads first
    try:
        return _fetch_and_convert(url, map_location, progress)
    finally:
        # also when rank 0 failed: the others then try themselves and report their own error
        if world_size > 1 and rank == 0:
            _barrier()


def _fetch_and_convert(url: str, map_location: Any, progress: Optional[bool]) -> Dict[str, Any]:
    """The body of :func:`load_official_weights` for one process."""
    _, sha256 = split_url(url)
    source = resolve_url(url)
    dst = cache_path(url)
    if osp.isfile(dst):
        try:
            return _read_verified(url, dst, source, map_location, sha256)
        except CheckpointError:
            _remove(dst)  # a damaged or outdated cache entry: fetch it again
    download(source, dst, sha256=sha256, progress=progress)
    try:
        return _read_verified(url, dst, source, map_location)
    except CheckpointError as err:
        _remove(dst)
        raise WeightsDownloadError(f'{err} (removed from the cache)') from err


def _read_verified(url: str, dst: str, source: str, map_location: Any,
                   sha256: Optional[str] = None) -> Dict[str, Any]:
    """Read, check and convert the file ``dst`` that holds ``url`` (its hash if given)."""
    if sha256 is not None and _sha256(dst) != sha256:
        raise CorruptCheckpointError(f'{url}: the cached file {dst} has the wrong SHA-256')
    checkpoint = read_checkpoint(dst, map_location=map_location, source=source)
    if official_layout(checkpoint) is None:
        keys = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else \
            type(checkpoint).__name__
        raise CorruptCheckpointError(
            f'{source} is not an official CAST checkpoint (downloaded to {dst}): no official '
            f'layout (DeiT, MoCo-v3, linear probe, Segmenter) matches its top-level keys {keys}')
    converted = to_mmengine_checkpoint(checkpoint, source, strict=True)
    _check_known_file(url, converted['meta']['cast_mm'])
    return converted


def _check_known_file(url: str, meta: Mapping) -> None:
    """An official file must have the layout and model family the release has."""
    path = official_path(url)
    if path not in OFFICIAL_FILES:
        return
    expected_layout, expected_family = OFFICIAL_FILES[path]
    layout, family = meta['source_layout'], meta['official_family']
    if (layout, family) != (expected_layout, expected_family):
        raise CorruptCheckpointError(
            f'{resolve_url(url)} is an official {layout} checkpoint of {family}.py, but the '
            f'official file {path} is a {expected_layout} checkpoint of {expected_family}.py '
            '(a mirror serving the wrong file?)')


def _dist_info() -> Tuple[int, int]:
    try:
        from mmengine.dist import get_dist_info
    except ImportError:  # pragma: no cover
        return 0, 1
    return get_dist_info()


def _barrier() -> None:
    from mmengine.dist import barrier
    barrier()


# ------------------------------------------------------------------ MMEngine loader schemes
def load_from_official_url(filename: str, map_location: Any = None) -> Dict[str, Any]:
    """MMEngine checkpoint loader for URLs under the official (or configured) base."""
    return load_official_weights(filename, map_location=map_location or 'cpu')


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """MMEngine's local-file loader, reading safely and converting official layouts."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    checkpoint = read_checkpoint(filename, map_location=map_location)
    checkpoint = to_mmengine_checkpoint(checkpoint, filename)
    if isinstance(checkpoint, Mapping):
        state = checkpoint.get('state_dict', checkpoint)
        if isinstance(state, Mapping):
            remember_source(filename, state)
    return checkpoint


def _url_prefix(base: str) -> str:
    return re.escape(base.rstrip('/') + '/')


def register_official_url_loader() -> None:
    """Load URLs under the official base with :func:`load_from_official_url` (idempotent).

    The scheme covers the default base and, when set, ``$CAST_MM_WEIGHTS_BASE`` (read now; URLs
    under the default base follow the variable at load time). No other URL is concerned.
    """
    from mmengine.runner import CheckpointLoader
    prefixes = [_url_prefix(DEFAULT_WEIGHTS_BASE)]
    if os.environ.get(WEIGHTS_BASE_ENV):
        prefixes.append(_url_prefix(weights_base()))
    CheckpointLoader.register_scheme(prefixes=prefixes, loader=load_from_official_url,
                                     force=True)


def register_local_file_loader() -> None:
    """Load every local file with :func:`load_from_local` instead of MMEngine's own loader,
    which reads them with torch's default unpickler and converts nothing (idempotent)."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def register_checkpoint_loaders() -> None:
    """Both loaders above: official URLs and every local file (idempotent)."""
    register_official_url_loader()
    register_local_file_loader()


def clear_cache_entry(url: str) -> None:
    """Remove the cached copy of ``url`` (e.g. to force a new download)."""
    path = cache_path(url)
    if osp.isdir(path):
        shutil.rmtree(path)
    else:
        _remove(path)

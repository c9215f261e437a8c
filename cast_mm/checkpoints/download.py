"""Official CAST weights by URL: downloaded once into torch hub's cache (rank 0 first), checked,
converted. ``CAST_MM_WEIGHTS_BASE`` replaces the base of the official URLs (a mirror, an offline
cluster's file server). A bad download is removed from the cache and named in the error."""
import hashlib
import os
import os.path as osp
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from mmengine.dist import barrier, get_dist_info

from .official import DEFAULT_WEIGHTS_BASE, OFFICIAL_FILES, to_mmengine_checkpoint
from .reading import CheckpointError, CorruptCheckpointError, read_checkpoint

#: Environment variable that replaces :data:`DEFAULT_WEIGHTS_BASE` (a mirror, an offline
#: cluster's file server).
WEIGHTS_BASE_ENV = 'CAST_MM_WEIGHTS_BASE'


class WeightsDownloadError(CheckpointError):
    """Downloading a checkpoint failed or gave something that is not the checkpoint."""


def weights_base() -> str:
    """The base URL of the official files: ``$CAST_MM_WEIGHTS_BASE`` or the default."""
    return (os.environ.get(WEIGHTS_BASE_ENV) or DEFAULT_WEIGHTS_BASE).rstrip('/')


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


def cache_path(url: str) -> str:
    """The cache file of ``url``: ``<torch hub dir>/checkpoints/cast_mm/`` and its official path,
    or host and path for other URLs."""
    path = official_path(url)
    if path is None:
        parts = urllib.parse.urlsplit(split_url(url)[0])
        path = parts.netloc.replace(':', '_') + parts.path
    path = osp.normpath(urllib.parse.unquote(path)).lstrip('/')
    if path.startswith('..') or not path or path == '.':
        raise ValueError(f'cannot cache {url}: no file path in it')
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'cast_mm', path)


class _SameMethodRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects with the request's own method (urllib turns a HEAD into a GET)."""

    def redirect_request(self, request, *args):
        follow = super().redirect_request(request, *args)
        if follow is not None:
            follow.method = request.get_method()
        return follow


def _announced(url: str) -> Tuple[Optional[int], str]:
    """``(Content-Length, Content-Type)`` a HEAD request of ``url`` announces (None and ``''``
    for what the server does not tell)."""
    request = urllib.request.Request(url, method='HEAD', headers={'User-Agent': 'cast_mm'})
    try:
        with urllib.request.build_opener(_SameMethodRedirects).open(request,
                                                                    timeout=60) as response:
            length = response.headers.get('Content-Length', '')
            return (int(length) if length.isdigit() else None,
                    response.headers.get('Content-Type', ''))
    except urllib.error.HTTPError as err:
        if err.code in (405, 501):  # a server without HEAD requests: nothing announced
            return None, ''
        raise


def download(url: str, dst: str, sha256: Optional[str] = None,
             progress: Optional[bool] = None) -> str:
    """Download ``url`` to ``dst`` with ``torch.hub.download_url_to_file``, checked.

    Args:
        url (str): what to fetch.
        dst (str): the file to write (its folder is created).
        sha256 (str, optional): expected SHA-256 (hex) of the file.
        progress (bool, optional): draw a progress bar. Defaults to whether stderr is a
            terminal.

    Returns:
        str: ``dst``.

    Raises:
        WeightsDownloadError: HTTP error, unreachable server, an HTML page, fewer bytes than
            the server announced, or a hash mismatch. Nothing is left at ``dst``.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    os.makedirs(osp.dirname(dst), exist_ok=True)
    print(f'Downloading {url} to {dst}', file=sys.stderr)
    partial = f'{dst}.{os.getpid()}.download'
    try:
        length, kind = _announced(url)
        if 'text/html' in kind:
            raise WeightsDownloadError(
                f'{url} is an HTML page ({kind}), not a checkpoint: an error or login page, '
                "or a web page link such as Hugging Face's /blob/ instead of /resolve/")
        torch.hub.download_url_to_file(url, partial, hash_prefix=sha256, progress=progress)
        if length is not None and osp.getsize(partial) != length:
            raise WeightsDownloadError(
                f'downloading {url} gave a truncated file: {osp.getsize(partial)} of the '
                f'{length} bytes the server announced')
    except (WeightsDownloadError, urllib.error.URLError, HTTPException, OSError,
            RuntimeError) as err:
        _remove(partial)
        if isinstance(err, WeightsDownloadError):
            raise
        raise WeightsDownloadError(_failure(url, err)) from err
    os.replace(partial, dst)
    return dst


def _failure(url: str, err: Exception) -> str:
    """What went wrong in a download that raised ``err``."""
    if isinstance(err, urllib.error.HTTPError):
        return f'downloading {url} failed: HTTP {err.code} {err.reason}'
    if isinstance(err, RuntimeError):  # torch.hub's hash check
        return f'{url}: SHA-256 mismatch, {err} (a corrupt download or a different file)'
    reason = getattr(err, 'reason', None) or err
    return (f'downloading {url} failed ({type(err).__name__}: {reason}); the file is truncated '
            f'if the connection broke. Set {WEIGHTS_BASE_ENV} to a reachable mirror of '
            f'{DEFAULT_WEIGHTS_BASE}, or download the file yourself and pass its path')


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


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
    rank, world_size = get_dist_info()
    if world_size > 1 and rank != 0:
        barrier()  # rank 0 downloads first
    try:
        return _fetch_and_convert(url, map_location, progress)
    finally:
        # also when rank 0 failed: the others then try themselves and report their own error
        if world_size > 1 and rank == 0:
            barrier()


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
    converted = to_mmengine_checkpoint(checkpoint, source, strict=True)
    if converted is checkpoint:
        keys = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else \
            type(checkpoint).__name__
        raise CorruptCheckpointError(
            f'{source} is not an official CAST checkpoint (downloaded to {dst}): no official '
            f'layout (DeiT, MoCo-v3, linear probe, Segmenter) matches its top-level keys {keys}')
    _check_known_file(url, converted['meta']['cast_mm'])
    return converted


def _check_known_file(url: str, meta: Mapping) -> None:
    """An official file must have the layout and model family the release has."""
    path = official_path(url)
    expected = OFFICIAL_FILES.get(path)
    layout, family = meta['source_layout'], meta['official_family']
    if expected is not None and (layout, family) != (expected.layout, expected.family):
        raise CorruptCheckpointError(
            f'{resolve_url(url)} is an official {layout} checkpoint of {family}.py, but the '
            f'official file {path} is a {expected.layout} checkpoint of {expected.family}.py '
            '(a mirror serving the wrong file?)')

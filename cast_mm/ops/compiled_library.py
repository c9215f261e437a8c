"""Small C libraries compiled with the system compiler at first use, loaded with ctypes.

The CPU kernels of :mod:`cast_mm.ops` (farthest point sampling, hashed dropout) are plain C
with no Python or torch headers, so building one takes about a second and needs only a C
compiler (``$CC``, else ``cc``/``gcc``/``clang``). A library is cached under
``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``) in a file named by a hash of
its source, compiler and flags, so an edit rebuilds and concurrent processes share one build
(the file is moved into place atomically). Each library has an environment switch
(``CAST_MM_<NAME>_KERNEL=0``) that turns it off; without a compiler, or when the build fails,
:meth:`CompiledLibrary.load` returns None, :meth:`CompiledLibrary.status` says why, and callers
keep their torch formulation.
"""
import ctypes
import hashlib
import os
import os.path as osp
import platform
import shutil
import subprocess
import tempfile
import threading
from typing import Dict, Optional, Sequence, Tuple

#: Compiler flags of every library: no floating-point contraction or reassociation, so the
#: kernels' arithmetic is exactly the one their sources write.
FLAGS = ('-O3', '-shared', '-fPIC', '-pthread', '-ffp-contract=off', '-fno-fast-math')


def find_compiler() -> Optional[str]:
    """Path of the C compiler to use (``$CC``, ``cc``, ``gcc``, ``clang``), or None."""
    for name in (os.environ.get('CC'), 'cc', 'gcc', 'clang'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class CompiledLibrary:
    """One C source built into a shared library on first use.

    Args:
        name (str): short name: the cache folder is ``cast_mm_<name>``, the environment
            switch ``CAST_MM_<NAME>_KERNEL``.
        what (str): what the library is, for messages ("FPS kernel").
        source (str): the C source.
        functions (dict): exported function name -> ``(restype, argtypes)`` for ctypes.
        fallback (str): what runs without the library, for :meth:`status`.
    """

    def __init__(self, name: str, what: str, source: str,
                 functions: Dict[str, Tuple[object, Sequence[object]]],
                 fallback: str = 'torch formulation') -> None:
        self.name = name
        self.fallback = fallback
        self.what = what
        self.source = source
        self.functions = functions
        self.env_switch = f'CAST_MM_{name.upper()}_KERNEL'
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the loaded library, so the next :meth:`load` builds or finds it again."""
        self._tried = False
        self._library: Optional[ctypes.CDLL] = None
        self._reason = 'not built yet'

    def cache_dir(self) -> str:
        root = os.environ.get('TORCH_EXTENSIONS_DIR') or osp.join(
            osp.expanduser('~'), '.cache', 'torch_extensions')
        return osp.join(root, f'cast_mm_{self.name}')

    def _build(self, compiler: str) -> str:
        """Path of the shared library, compiled into the cache unless already there."""
        key = hashlib.sha256('\0'.join([self.source, compiler, platform.machine(), *FLAGS])
                             .encode()).hexdigest()[:16]
        directory = self.cache_dir()
        library = osp.join(directory, f'{self.name}_{key}.so')
        if osp.exists(library):
            return library
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            source = osp.join(tmp, f'{self.name}.c')
            with open(source, 'w') as f:
                f.write(self.source)
            built = osp.join(tmp, f'{self.name}.so')
            subprocess.run([compiler, *FLAGS, source, '-o', built], check=True,
                           capture_output=True, timeout=120)
            os.replace(built, library)  # atomic: concurrent builders leave one complete file
        return library

    def disabled(self) -> bool:
        return os.environ.get(self.env_switch, '1') == '0'

    def load(self) -> Optional[ctypes.CDLL]:
        """The loaded library with its functions typed, or None (see :meth:`status`)."""
        if self.disabled():
            return None
        with self._lock:
            if not self._tried:
                self._tried = True
                compiler = find_compiler()
                if compiler is None:
                    self._reason = 'no C compiler found ($CC, cc, gcc, clang)'
                    return None
                try:
                    library = ctypes.CDLL(self._build(compiler))
                    for fn_name, (restype, argtypes) in self.functions.items():
                        fn = getattr(library, fn_name)
                        fn.restype, fn.argtypes = restype, list(argtypes)
                except (OSError, AttributeError, subprocess.SubprocessError) as err:
                    detail = getattr(err, 'stderr', b'') or b''
                    self._reason = (f'building the {self.what} failed: {err} '
                                    f'{detail.decode(errors="replace")[-500:]}').strip()
                else:
                    self._library = library
                    self._reason = 'compiled kernel'
        return self._library

    def status(self) -> str:
        """``'compiled kernel'``, or why the torch formulation runs instead."""
        if self.disabled():
            return f'{self.fallback} ({self.env_switch}=0)'
        if self.load() is not None:
            return 'compiled kernel'
        return f'{self.fallback} ({self._reason})'

import glob
import os
import os.path as osp
import shutil
from setuptools import find_packages, setup
from setuptools.command.develop import develop

ROOT = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    scope = {}
    with open(osp.join(ROOT, 'cast_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    """The requirements of ``requirements/<name>``, following ``-r other.txt`` lines."""
    with open(osp.join(ROOT, 'requirements', name)) as f:
        lines = [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]
    return [req for line in lines
            for req in (read_requirements(line[2:].strip()) if line.startswith('-r') else [line])]


def add_mim_extension() -> None:
    """Expose configs/ and model-index.yml as ``cast_mm/.mim`` (what ``cast_mm::`` bases need).

    Editable installs get symlinks, regular builds get copies.
    """
    mim_dir = osp.join(ROOT, 'cast_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        src = osp.join(ROOT, name)
        dst = osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        try:
            os.symlink(osp.relpath(src, mim_dir), dst)
        except OSError:
            (shutil.copytree if osp.isdir(src) else shutil.copyfile)(src, dst)


def cpp_extensions() -> tuple:
    """The compiled CPU operators (``cast_mm/ops/csrc``) as ``(ext_modules, cmdclass)``.

    Built unless ``CAST_MM_WITH_OPS=0`` (as mmcv's ``MMCV_WITH_OPS``); without them cast_mm runs
    the operators' fallbacks and its build-time log line says so.
    """
    if os.environ.get('CAST_MM_WITH_OPS', '1') == '0':
        return [], {}
    from torch.utils.cpp_extension import BuildExtension, CppExtension, include_paths
    sources = sorted(glob.glob(osp.join('cast_mm', 'ops', 'csrc', '*.cpp')))
    # Warnings on for our sources; torch's headers are system headers (their warnings are
    # torch's). No floating-point contraction: the FPS kernel must round as DGL does.
    flags = ['-O3', '-Wall', '-Wextra', '-ffp-contract=off', '-fno-fast-math']
    for path in include_paths():
        flags += ['-isystem', path]
    extension = CppExtension('cast_mm.ops._C', sources, extra_compile_args={'cxx': flags})
    return [extension], {'build_ext': BuildExtension}


class Develop(develop):

    def run(self):
        add_mim_extension()
        super().run()


add_mim_extension()
ext_modules, build_cmds = cpp_extensions()

setup(
    name='cast_mm',
    version=read_version(),
    description='CAST: hierarchical image segmentation for and by recognition, in OpenMMLab',
    long_description=open(osp.join(ROOT, 'README.md')).read() if osp.exists(
        osp.join(ROOT, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,
    package_data={'cast_mm': ['.mim/configs/**/*', '.mim/model-index.yml', '.mim/tools/**/*']},
    # The analysis tools and their library (cast_analysis) run from a checkout of the repository.
    exclude_package_data={'cast_mm': ['.mim/tools/analysis/*']},
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'demo': read_requirements('demo.txt')
    },
    ext_modules=ext_modules,
    cmdclass={'develop': Develop, **build_cmds},
    license='Apache License 2.0',
    zip_safe=False,
)

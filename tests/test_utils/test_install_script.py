"""tools/install.sh: how it builds mmcv, decided from a faked environment (nothing installed)."""
import os
import os.path as osp
import subprocess

import pytest
from helpers import REPO

SCRIPT = osp.join(REPO, 'tools', 'install.sh')


def _fake_tool(folder, name: str) -> None:
    path = folder / name
    path.write_text('#!/bin/sh\necho fake\n')
    path.chmod(0o755)


def build_env(tmp_path, *options, nvcc_on_path=False, cuda_home=None, gpu=True):
    """``--print-mmcv-build-env`` under a PATH with (or without) nvidia-smi and nvcc."""
    tools = tmp_path / 'bin'
    tools.mkdir(exist_ok=True)
    if gpu:
        _fake_tool(tools, 'nvidia-smi')
    if nvcc_on_path:
        _fake_tool(tools, 'nvcc')
    env = {k: v for k, v in os.environ.items() if k not in ('CUDA_HOME', 'FORCE_CUDA')}
    env.update(PATH=f'{tools}:/usr/bin:/bin', CAST_MM_CACHE=str(tmp_path / 'cache'),
               FORCE_CUDA='1', CUDA_VISIBLE_DEVICES='0')
    if cuda_home is not None:
        env['CUDA_HOME'] = str(cuda_home)
    proc = subprocess.run(['bash', SCRIPT, '--print-mmcv-build-env', *options], env=env,
                          capture_output=True, text=True, timeout=60)
    values = dict(line.split('=', 1) for line in proc.stdout.splitlines() if '=' in line)
    return proc.returncode, values, proc.stderr


@pytest.mark.parametrize('gpu', [True, False])
def test_default_build_hides_the_gpus_and_needs_no_cuda_compiler(tmp_path, gpu):
    rc, values, _ = build_env(tmp_path, gpu=gpu)
    assert rc == 0
    # mmcv's setup.py builds CUDA ops when torch sees a GPU or FORCE_CUDA=1: neither here.
    assert values['FORCE_CUDA'] == '0' and values['CUDA_VISIBLE_DEVICES'] == ''
    assert values['MMCV_WHEEL_DIR'] == str(tmp_path / 'cache')


def test_cuda_ops_on_request_with_nvcc_on_path_or_in_cuda_home(tmp_path):
    rc, values, _ = build_env(tmp_path, '--mmcv-cuda-ops', nvcc_on_path=True)
    assert rc == 0 and values['FORCE_CUDA'] == '1' and 'CUDA_VISIBLE_DEVICES' not in values
    assert values['MMCV_WHEEL_DIR'] == str(tmp_path / 'cache' / 'cuda-ops')
    home = tmp_path / 'cuda'
    (home / 'bin').mkdir(parents=True)
    _fake_tool(home / 'bin', 'nvcc')
    rc, values, _ = build_env(tmp_path, '--mmcv-cuda-ops', cuda_home=home)
    assert rc == 0 and values['FORCE_CUDA'] == '1'


def test_cuda_ops_without_a_compiler_is_a_clear_error(tmp_path):
    rc, values, err = build_env(tmp_path, '--mmcv-cuda-ops', cuda_home=tmp_path / 'nowhere')
    assert rc == 2 and not values
    assert '--mmcv-cuda-ops needs a CUDA compiler' in err and 'nvcc' in err


def test_unknown_option_is_refused(tmp_path):
    rc, _, err = build_env(tmp_path, '--cuda')
    assert rc == 2 and "unknown option '--cuda'" in err

"""The compiled operators are optional: without cast_mm.ops._C the package runs the fallbacks and
says so."""
import subprocess
import sys

import pytest
from helpers import REPO, subprocess_env

WITHOUT_EXTENSION = """
import sys
sys.modules['cast_mm.ops._C'] = None  # as if the extension had not been built
import torch
from cast_mm.ops import extension, farthest_point_sampling
from cast_mm.ops.farthest_point_sampling import native_implementation
from cast_mm.models.execution_log import describe_device
assert not extension.available() and extension.status().startswith('not built'), extension.status()
points = torch.randn(2, 30, 8)
assert torch.equal(farthest_point_sampling(points, 10),
                   farthest_point_sampling(points, 10, backend='dgl'))
line = str(describe_device(torch.device('cpu')))
assert 'DGL kernel (cast_mm.ops._C not built' in line, line
assert not hasattr(torch.ops.cast_mm, 'fps_cpu')
"""


@pytest.mark.slow  # a process importing the whole stack
def test_the_package_works_without_the_extension_and_says_so():
    env = subprocess_env()
    result = subprocess.run([sys.executable, '-c', WITHOUT_EXTENSION], cwd=str(REPO), env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr

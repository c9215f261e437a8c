"""The README's Python examples run as written."""
import os.path as osp
import re
import subprocess
import sys

from conftest import REPO


def readme_python_blocks():
    with open(osp.join(REPO, 'README.md')) as f:
        return re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)


def test_readme_backbone_example_runs(tmp_path):
    blocks = readme_python_blocks()
    assert blocks, 'README has no python example'
    for block in blocks:
        script = tmp_path / 'example.py'
        script.write_text(block)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    assert 'stage 4: 16 tokens -> 8 segments' in done.stdout


def test_demo_command_runs_on_bundled_photographs():
    done = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'demo.py'), '--arch', 'small'],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if 'SEEDS superpixels' in line]
    assert len(lines) == 3 and all('segments per level [64, 32, 16, 8]' in l for l in lines)

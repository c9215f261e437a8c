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


def test_readme_main_command_is_the_demo():
    with open(osp.join(REPO, 'README.md')) as f:
        first_block = re.search(r'```bash\n(.*?)```', f.read(), flags=re.S).group(1)
    assert 'bash tools/install.sh && python3 tools/demo.py' in first_block
    assert 'bash tools/install.sh --tests && python3 -m pytest -q tests' in first_block


def test_demo_trains_evaluates_and_writes_a_picture(tmp_path):
    """tools/demo.py end to end, shortened to 2 iterations."""
    done = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'demo.py'), '--iters', '2',
                           '--work-dir', str(tmp_path / 'work')],
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'validation mIoU after 2 iterations:' in done.stdout
    assert (tmp_path / 'work' / 'iter_2.pth').exists()
    assert (tmp_path / 'work' / 'demo_prediction.png').stat().st_size > 0
    assert (tmp_path / 'data' / 'cast_demo_ade20k' / 'images' / 'training').is_dir()

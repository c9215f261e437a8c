"""docs/hierarchy.md: its Python example runs as written and its picture exists."""
import os.path as osp
import re
import subprocess
import sys

import pytest
from helpers import REPO

DOC = osp.join(REPO, 'docs', 'hierarchy.md')


@pytest.mark.slow
def test_hierarchy_doc_python_example_runs(tmp_path):
    with open(DOC) as f:
        text = f.read()
    blocks = re.findall(r'```python\n(.*?)```', text, flags=re.S)
    assert len(blocks) == 1
    script = tmp_path / 'example.py'
    script.write_text(blocks[0])
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '(224, 224)' in done.stdout  # the centre crop of the config's test pipeline
    assert (tmp_path / 'vis' / 'astronaut_panel.png').exists()
    for image in re.findall(r'\]\((images/[^)]+)\)', text):
        assert osp.getsize(osp.join(REPO, 'docs', image)) < 300_000

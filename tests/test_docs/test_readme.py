"""The README and docs/: the main command is the demo, whose recipe learns; the Python examples
run as written; every relative link reaches its file and heading."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from helpers import REPO, load_config, load_tool
from helpers.seg import shrink_seg_config


def readme_python_blocks():
    with open(osp.join(REPO, 'README.md')) as f:
        return re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)


@pytest.mark.slow
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


@pytest.mark.slow
def test_demo_trains_evaluates_and_writes_a_picture(tmp_path, monkeypatch, capsys):
    """tools/demo.py as the README runs it (CAST-S at 128 pixels, its data generated under the
    current folder), shortened to 2 iterations."""
    monkeypatch.chdir(tmp_path)
    assert load_tool('demo').main(['--iters', '2', '--work-dir', 'work']) == 0
    assert 'validation mIoU after 2 iterations:' in capsys.readouterr().out
    assert (tmp_path / 'work' / 'iter_2.pth').exists()
    assert (tmp_path / 'work' / 'demo_prediction.png').stat().st_size > 0
    assert (tmp_path / 'data' / 'cast_demo_ade20k' / 'images' / 'training').is_dir()


#: Iterations of the demo recipe on a tiny CAST, and the validation mIoU it must reach. An
#: untrained model scores 0.0 on the demo's validation split (checked in the test); 20
#: iterations reach 45, 30 reach 55, and the README's CAST-S 93 after its 200 iterations.
LEARN_ITERS = 20
LEARN_FLOOR = 25.0


def test_demo_recipe_learns_far_above_an_untrained_model(tmp_path):
    """cast-s_demo.py (the recipe, data and pipeline of the demo) on a tiny CAST at 64-pixel
    crops: a few iterations lift the validation mIoU far above the untrained model's."""
    from mmengine.runner import Runner
    cfg = load_config('cast-s_demo.py')
    batch_size = cfg.train_dataloader.batch_size
    shrink_seg_config(cfg, str(tmp_path / 'work'), str(tmp_path / 'demo'), iters=LEARN_ITERS)
    cfg.train_dataloader.batch_size = batch_size
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()
    untrained = float(runner.val()['mIoU'])
    runner.train()
    trained = runner.message_hub.get_scalar('val/mIoU').current()
    assert untrained < LEARN_FLOOR / 2, f'an untrained model already scores {untrained:.2f}'
    assert trained >= LEARN_FLOOR, (
        f'after {LEARN_ITERS} iterations the demo recipe scores {trained:.2f} mIoU (untrained '
        f'{untrained:.2f}); it should reach {LEARN_FLOOR}')


#: The README is a product page; details live in docs/.
README_MAX_LINES = 250


def test_readme_stays_a_product_page():
    with open(osp.join(REPO, 'README.md')) as f:
        lines = f.read().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f'README.md has {len(lines)} lines; keep it at most {README_MAX_LINES} and move detail '
        'into docs/')


def _without_code_blocks(text: str) -> str:
    return re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)


def _markdown_outside_code(text: str) -> str:
    """``text`` without fenced code blocks and inline code spans."""
    return re.sub(r'`[^`\n]*`', '', _without_code_blocks(text))


def github_anchors(text: str) -> set:
    """The anchors GitHub gives the headings of a markdown text (duplicates get -1, -2, ...)."""
    anchors, seen = set(), {}
    for heading in re.findall(r'^#{1,6} +(.+?) *#* *$', _without_code_blocks(text), flags=re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.replace('`', '').strip().lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f'{slug}-{count}')
    return anchors


def test_github_anchors_follow_github():
    text = ('# Atomic checkpoints and the `--resume` fallback\n## Semantic segmentation '
            '(MMSegmentation)\n```\n# not a heading\n```\n### Odd inputs\n### Odd inputs\n')
    assert github_anchors(text) == {
        'atomic-checkpoints-and-the---resume-fallback', 'semantic-segmentation-mmsegmentation',
        'odd-inputs', 'odd-inputs-1'
    }


def _doc_files():
    docs = osp.join(REPO, 'docs')
    return ['README.md'] + sorted(
        osp.join('docs', name) for name in os.listdir(docs) if name.endswith('.md'))


@pytest.mark.parametrize('doc', _doc_files())
def test_relative_links_reach_a_file_and_heading(doc):
    """Every relative link of the README and docs/*.md names an existing file (and heading)."""
    with open(osp.join(REPO, doc)) as f:
        text = f.read()
    broken = []
    for target in re.findall(r'\]\(([^)\s]+)\)', _markdown_outside_code(text)):
        if re.match(r'[a-z]+:', target):
            continue  # https:, mailto: and the like
        path, _, anchor = target.partition('#')
        file = osp.normpath(osp.join(REPO, osp.dirname(doc), path)) if path else osp.join(
            REPO, doc)
        if not osp.exists(file):
            broken.append(f'{target}: no file {osp.relpath(file, REPO)}')
        elif anchor:
            with open(file) as f:
                if anchor not in github_anchors(f.read()):
                    broken.append(f'{target}: no heading with anchor #{anchor}')
    assert not broken, f'{doc} has broken links:\n' + '\n'.join(broken)

"""tools/analysis/resume_time.py measures both resume paths at a small iteration."""

import json

import pytest
import torch
from helpers import load_tool

from cast_analysis import resume as resume_time


def test_checkpoint_is_rewritten_to_the_asked_iteration(tmp_path):
    base = tmp_path / 'iter_2.pth'
    torch.save(dict(meta=dict(iter=2, epoch=0), message_hub=dict(runtime_info=dict(iter=2)),
                    param_schedulers=[dict(last_step=2, base_values=[1.0])],
                    state_dict=dict(w=torch.ones(2))), base)
    path = resume_time.checkpoint_at(str(base), 10000, str(tmp_path / 'out'))
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint['meta']['iter'] == 10000
    assert checkpoint['message_hub']['runtime_info']['iter'] == 10000
    assert checkpoint['param_schedulers'][0]['last_step'] == 10000
    assert torch.equal(checkpoint['state_dict']['w'], torch.ones(2))
    assert (tmp_path / 'out' / 'last_checkpoint').read_text() == path


@pytest.mark.slow
def test_replay_and_skip_are_measured(tmp_path):
    summary = load_tool('analysis/resume_time').main(
        ['--iters', '6', '--replay-iters', '3', '--num-workers', '0', '--work-dir', str(tmp_path),
         '--json', str(tmp_path / 'r.json')])
    skip_6, skip_3, replay_3 = summary['runs']
    runs = [(r['mode'], r['iters']) for r in summary['runs']]
    assert runs == [('skip', 6), ('skip', 3), ('replay', 3)]
    # Each run really took its path: MMEngine's loop logs the replay, cast_mm's the skip.
    assert skip_6['skipped'] and skip_3['skipped'] and not skip_6['replayed']
    assert replay_3['replayed'] and not replay_3['skipped']
    # Replaying 3 batches through SEEDS costs more than skipping 12 indices.
    assert replay_3['positioning'] > skip_3['positioning']
    assert summary['replay_at_iters_extrapolated'] is True
    assert summary['replay_at_iters'] == pytest.approx(
        skip_6['launch'] + 6 * summary['replay_seconds_per_batch'])
    run = json.loads((tmp_path / 'r.json').read_text())
    assert run['tool'] == 'resume_time' and run['results']['runs'] == summary['runs']
    assert run['tables'][0]['section'] == 'resume'

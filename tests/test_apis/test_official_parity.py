"""The public official-parity fixture, through the same code as the command-line checker."""
import subprocess
import sys

import pytest
import torch
from conftest import PUBLIC_FIXTURE, REPO

from cast_analysis.parity import check_case, compare_outputs


@pytest.mark.parametrize('case', ['moco_cls', 'deit_cls', 'moco_seg', 'segmenter_seg'])
def test_public_fixture_case_at_parity(public_fixture, case):
    rows = check_case(case, public_fixture['cases'][case], public_fixture['image_mean'],
                      public_fixture['image_std'])
    failures = [row.format() for row in rows if not row.ok]
    assert rows and not failures, '\n'.join(failures)
    # every stage's sampled indices were compared exactly
    assert sum(row.quantity.endswith('sampled_inds') for row in rows) == 4


def test_literal_profile_with_dgl_sampling_gives_the_same_outputs(public_fixture):
    rows = check_case('deit_cls', public_fixture['cases']['deit_cls'],
                      public_fixture['image_mean'], public_fixture['image_std'], literal=True)
    assert rows and all(row.ok for row in rows)


def test_comparison_fails_loudly_on_drift():
    ref = {'logits': torch.ones(2, 3), 'pools': {'pool1': {'sampled_inds': torch.arange(4)}}}
    swapped = torch.tensor([0, 1, 3, 2])
    ours = {'logits': torch.ones(2, 3) + 2e-4, 'pools': {'pool1': {'sampled_inds': swapped}}}
    rows = {row.quantity: row for row in compare_outputs('x', ours, ref)}
    assert not rows['logits'].ok and not rows['pools.pool1.sampled_inds'].ok
    missing = compare_outputs('x', {}, ref)
    assert not any(row.ok for row in missing)


@pytest.mark.slow
def test_checker_cli_exit_codes(tmp_path, public_fixture):
    script = f'{REPO}/tools/analysis/check_official_parity.py'
    ok = subprocess.run([sys.executable, script, PUBLIC_FIXTURE], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '4/4 cases at parity' in ok.stdout
    # A drifted reference must make the checker exit 1 and name the quantity.
    case = dict(public_fixture['cases']['deit_cls'])
    case['outputs'] = dict(case['outputs'], logits=case['outputs']['logits'] + 1e-2)
    drifted = tmp_path / 'drifted.pt'
    torch.save(dict(public_fixture, cases={'deit_cls': case}), drifted)
    bad = subprocess.run([sys.executable, script, str(drifted)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert 'FAIL deit_cls         logits' in bad.stdout

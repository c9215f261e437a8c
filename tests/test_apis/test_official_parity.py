"""The public official-parity fixture, through the same code as the command-line checker."""
import subprocess
import sys

import pytest
import torch
from helpers import REPO, load_tool, subprocess_env

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


def one_case_fixture(public_fixture, path, drift=0.0):
    """The public fixture's DeiT case alone, its reference logits moved by ``drift``."""
    case = dict(public_fixture['cases']['deit_cls'])
    case['outputs'] = dict(case['outputs'], logits=case['outputs']['logits'] + drift)
    torch.save(dict(public_fixture, cases={'deit_cls': case}), path)
    return str(path)


def test_checker_exits_0_at_parity(public_fixture, tmp_path, capsys):
    check = load_tool('analysis/check_official_parity').main
    assert check([one_case_fixture(public_fixture, tmp_path / 'deit.pt')]) == 0
    assert '1/1 cases at parity' in capsys.readouterr().out


@pytest.mark.slow  # the tool's subprocess smoke test: a process importing the whole stack
def test_checker_command_exits_1_and_names_the_drifted_quantity(tmp_path, public_fixture):
    # A drifted reference must make the checker exit 1 and name the quantity.
    drifted = one_case_fixture(public_fixture, tmp_path / 'drifted.pt', drift=1e-2)
    bad = subprocess.run([sys.executable, f'{REPO}/tools/analysis/check_official_parity.py',
                          drifted], capture_output=True, text=True, env=subprocess_env())
    assert bad.returncode == 1, bad.stderr
    assert 'FAIL deit_cls         logits' in bad.stdout

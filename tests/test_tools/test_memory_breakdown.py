"""tools/analysis/memory_breakdown.py attributes a train step's saved tensors to their modules."""

import pytest
from helpers import load_tool

from cast_analysis import Settings
from cast_analysis.saved_tensors import breakdown


@pytest.fixture(scope='module')
def smoke_results():
    settings = Settings(smoke=True)
    return {name: breakdown(name, settings, top=50)
            for name in ('cast_seg_literal', 'cast_seg_fast', 'cast_seg_fast+cp')}


def places(result):
    return {place: size for place, size, _ in result['by_module']}


@pytest.mark.slow
def test_pixel_loss_saves_pixel_logits_and_superpixel_loss_does_not(smoke_results):
    literal, fast = smoke_results['cast_seg_literal'], smoke_results['cast_seg_fast']
    # Batch 1, 150 classes, at the padded crop: mmseg's pixel cross entropy keeps its
    # log-softmax of that size for the backward pass; the superpixel loss keeps none.

    def pixel_maps(result):
        return [place for place, _, shape, _ in result['largest']
                if len(shape) == 4 and shape[:2] == (1, 150)]

    assert pixel_maps(literal), literal['largest']
    assert all(p.startswith('decode_head') for p in pixel_maps(literal)), literal['largest']
    assert not pixel_maps(fast), fast['largest']
    assert fast['saved_total'] < literal['saved_total']


@pytest.mark.slow
def test_checkpointed_blocks_save_less_and_totals_add_up(smoke_results):
    fast, fast_cp = smoke_results['cast_seg_fast'], smoke_results['cast_seg_fast+cp']
    assert places(fast_cp).get('backbone.blocks', 0) < places(fast)['backbone.blocks']
    for result in smoke_results.values():
        assert sum(size for _, size, _ in result['by_module']) == result['saved_total']
        assert result['saved_tensors'] > 0 and result['parameter_gradients'] > 0


def test_unknown_model_names_are_named():
    with pytest.raises(SystemExit, match='unknown CAST model names'):
        load_tool('analysis/memory_breakdown').main(['--models', 'deit_s'])

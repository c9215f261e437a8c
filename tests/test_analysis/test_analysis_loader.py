"""cast_analysis.loader: training configs grouped, synthetic files, the pipeline timed per
transform on one thread."""
import glob
import os.path as osp

import cv2
import pytest
import torch
from helpers import load_config

from cast_analysis.loader import (CONFIG_DIR, SAMPLE_LAYOUTS, one_worker_thread, sample_layout,
                                  time_pipeline, training_configs, transform_name, write_samples)


def config(name):
    return osp.join(CONFIG_DIR, name)


def test_every_training_config_is_in_one_group_and_twins_share_it():
    groups = training_configs()
    grouped = [path for group in groups for path in group.configs]
    assert len(grouped) == len(set(grouped))
    for path in sorted(glob.glob(osp.join(CONFIG_DIR, '*.py'))):
        has_loader = load_config(path).get('train_dataloader') is not None
        assert (path in grouped) == has_loader, path
    assert config('cast-s_partimagenet.py') not in grouped  # evaluation only
    by_config = {path: group for group in groups for path in group.configs}
    for small, base in (('cast-s_ade20k.py', 'cast-b_ade20k.py'),
                        ('cast-s_8xb128_in1k.py', 'cast-b_8xb128_in1k.py'),
                        ('cast-s_mocov3-100e_8xb32_in1k.py', 'cast-b_mocov3-100e_8xb32_in1k.py')):
        assert by_config[config(small)] is by_config[config(base)]
    # Different data, different groups; every dataset type has synthetic files.
    assert by_config[config('cast-s_ade20k.py')] is not by_config[config('cast-s_demo.py')]
    assert {group.dataset_type for group in groups} <= set(SAMPLE_LAYOUTS)
    ade = by_config[config('cast-s_ade20k.py')]
    assert (ade.dataset_type, ade.num_workers, ade.default_scope) == ('ADE20KDataset', 4, 'mmseg')


def test_unknown_dataset_types_name_the_table():
    with pytest.raises(KeyError, match='SAMPLE_LAYOUTS'):
        sample_layout('CityscapesDataset')


# mmseg warns when a config sets LoadAnnotations' reduce_zero_label, as ADE20K configs do.
@pytest.mark.filterwarnings('ignore:`reduce_zero_label` will be deprecated')
@pytest.mark.parametrize('name, dataset_type', [('cast-s_demo.py', 'DemoADE20KDataset'),
                                                ('cast-s_8xb128_in1k.py', 'ImageNet')])
def test_pipeline_is_timed_per_transform_on_synthetic_files(tmp_path, name, dataset_type):
    (group, ) = training_configs([config(name)])
    assert group.dataset_type == dataset_type
    layout = sample_layout(dataset_type)
    infos = write_samples(layout, str(tmp_path), 2)
    image = cv2.imread(infos[0]['img_path'])
    assert image.shape == (layout.height, layout.width, 3)
    if layout.classes is not None:
        labels = cv2.imread(infos[1]['seg_map_path'], cv2.IMREAD_UNCHANGED)
        assert labels.shape == image.shape[:2] and labels[labels != 255].max() < layout.classes
        assert infos[0]['reduce_zero_label'] == layout.reduce_zero_label
    else:
        assert 0 <= infos[0]['gt_label'] < 1000
    threads = torch.get_num_threads()
    result = time_pipeline(group, infos, warmup=0, repeats=2)
    assert torch.get_num_threads() == threads
    assert result['samples'] == 4 and result['dropped'] == 0
    names = [name for name, _ in result['transforms']]
    assert names == [t['type'] for t in group.pipeline]
    assert 'cast_mm.SEEDSSuperpixels' in names
    assert all(ms > 0 for _, ms in result['transforms'])
    assert result['ms_per_sample'] == pytest.approx(sum(ms for _, ms in result['transforms']))


def test_one_worker_thread_sets_and_restores_torch_and_opencv_threads():
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    try:
        with one_worker_thread():
            assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (2, 2)
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def test_wrapping_transforms_are_named_with_what_they_wrap():
    seeds = dict(type='cast_mm.SEEDSSuperpixels', preset='moco')
    assert transform_name(dict(type='ApplyToList', transforms=[seeds])) == \
        'ApplyToList(cast_mm.SEEDSSuperpixels)'
    views = dict(type='MultiView', transforms=[[dict(type='RandomFlip')],
                                               [dict(type='RandomFlip'), dict(type='Solarize')]])
    assert transform_name(views) == 'MultiView(RandomFlip, Solarize)'
    assert transform_name(seeds) == 'cast_mm.SEEDSSuperpixels'

"""Resume and load_from work with torch >= 2.6's safe loading (mmengine 0.10.7)."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import cast_mm  # noqa: F401  (allow-lists MMEngine checkpoint objects)
from cast_mm.models import CAST
from conftest import TINY_ARCH, TINY_CLUSTERS, grid_superpixels


class TinyCASTClassifier(BaseModel):
    """CAST + linear head, enough to exercise the MMEngine training loop."""

    def __init__(self):
        super().__init__()
        self.backbone = CAST(arch=TINY_ARCH, num_clusters=TINY_CLUSTERS, img_size=32)
        self.head = nn.Linear(48, 3)
        # MMEngine does not checkpoint RNG states, so bit-equal resumption needs no dropout.
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.

    def forward(self, inputs, superpixels, labels, mode='tensor'):
        logits = self.head(self.backbone(inputs, superpixels)[0])
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


class RandomImages(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, index):
        gen = torch.Generator().manual_seed(index)
        return dict(inputs=torch.randn(3, 32, 32, generator=gen),
                    superpixels=grid_superpixels(1, 32, 32, cell=4)[0],
                    labels=torch.tensor(index % 3))


def make_runner(work_dir, max_iters, resume=False, load_from=None):
    torch.manual_seed(0)
    return Runner(
        model=TinyCASTClassifier(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=RandomImages(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        default_scope='mmengine')


def test_resume_finishes_like_an_uninterrupted_run(tmp_path):
    full = make_runner(tmp_path / 'full', max_iters=6)
    full.train()
    expected = copy.deepcopy(full.model.state_dict())

    make_runner(tmp_path / 'split', max_iters=3).train()  # stops after 3 iterations
    resumed = make_runner(tmp_path / 'split', max_iters=6, resume=True)
    resumed.train()
    assert resumed.iter == 6
    for key, value in expected.items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, msg=key)


def test_load_from_reads_mmengine_checkpoint(tmp_path):
    first = make_runner(tmp_path / 'a', max_iters=2)
    first.train()
    runner = make_runner(tmp_path / 'b', max_iters=2, load_from=str(tmp_path / 'a' / 'iter_2.pth'))
    runner.load_or_resume()
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(runner.model.state_dict()[key], value, msg=key)

"""Open-vocabulary labelling of segments with open_clip (the PartImageNet protocol).

Each segment is classified by CLIP on the image with every pixel outside the segment set to a
constant (0.5 in normalised space, as the official notebook). Coarse segments are classified
among the objects and the background; each fine segment among the parts of the object
predicted at its first pixel (row-major), or as background when that object is background.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def import_open_clip():
    """The ``open_clip`` module, or an ImportError saying how to install it."""
    try:
        import open_clip
    except ImportError as err:
        raise ImportError('open-vocabulary labelling (PartImageNet evaluation) needs open_clip: '
                          'pip install open_clip_torch') from err
    return open_clip


class OpenVocabSegmentLabeler:
    """Label segments with an open_clip model.

    Classes follow the dataset meta of :class:`~cast_mm.datasets.PartImageNetDataset`:
    index 0 of ``object_classes`` and ``part_classes`` is the background.

    Args:
        object_classes (Sequence[str]): background then the objects.
        part_classes (Sequence[str]): background then the parts.
        part_to_object (Sequence[int]): object index of each part index.
        model_name (str): open_clip model. Defaults to ``'ViT-B-16'``.
        pretrained (str, optional): open_clip pretrained tag (``'openai'``); None keeps the
            random initialisation (tests).
        prompt (str): text template. Defaults to ``'a photo of a {}'``.
        background_name (str): text of the background class. Defaults to ``'Background'``.
        fill_value (float): value of the pixels outside a segment, in normalised space.
        batch_size (int): segments per CLIP forward pass. Defaults to 32.
        device (str): torch device. Defaults to ``'cpu'``.
    """

    def __init__(self,
                 object_classes: Sequence[str],
                 part_classes: Sequence[str],
                 part_to_object: Sequence[int],
                 model_name: str = 'ViT-B-16',
                 pretrained: Optional[str] = 'openai',
                 prompt: str = 'a photo of a {}',
                 background_name: str = 'Background',
                 fill_value: float = 0.5,
                 batch_size: int = 32,
                 device: str = 'cpu') -> None:
        open_clip = import_open_clip()
        if len(part_to_object) != len(part_classes):
            raise ValueError(f'part_to_object has {len(part_to_object)} entries for '
                             f'{len(part_classes)} part classes')
        self.part_to_object = np.asarray(part_to_object, dtype=np.int64)
        if self.part_to_object.min() < 0 or self.part_to_object.max() >= len(object_classes):
            raise ValueError(f'part_to_object must index the {len(object_classes)} object '
                             f'classes, got {list(part_to_object)}')
        self.fill_value = fill_value
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.model = open_clip.create_model(model_name, pretrained=pretrained,
                                            device=self.device).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        size = self.model.visual.image_size
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        cfg = self.model.visual.preprocess_cfg
        self.mean = torch.tensor(cfg['mean']).view(3, 1, 1)
        self.std = torch.tensor(cfg['std']).view(3, 1, 1)
        self.prompt = prompt
        self.object_text = self.encode_text([background_name] + list(object_classes[1:]))
        #: per object index: the part indices and their text features.
        self.parts_of = {obj: np.flatnonzero(self.part_to_object == obj)
                         for obj in range(1, len(object_classes))}
        self.part_text = {obj: self.encode_text([part_classes[p] for p in parts])
                          for obj, parts in self.parts_of.items() if len(parts)}

    @torch.no_grad()
    def encode_text(self, names: Sequence[str]) -> Tensor:
        """L2-normalised text features ``(len(names), D)`` of the prompts."""
        tokens = self.tokenizer([self.prompt.format(name) for name in names]).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def _preprocess(self, image: np.ndarray, label_map: np.ndarray):
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None]
        pixels = F.interpolate(pixels / 255., size=self.image_size, mode='bicubic',
                               align_corners=False).clamp(0, 1)[0]
        labels = F.interpolate(torch.from_numpy(label_map)[None, None].float(),
                               size=self.image_size, mode='nearest')[0, 0].long()
        return (pixels - self.mean) / self.std, labels

    @torch.no_grad()
    def segment_image_features(self, image: np.ndarray, label_map: np.ndarray,
                               segment_ids: Sequence[int]) -> Tensor:
        """L2-normalised CLIP features ``(len(segment_ids), D)`` of the masked images.

        Args:
            image (np.ndarray): ``H x W x 3`` RGB uint8.
            label_map (np.ndarray): ``H x W`` segment ids.
            segment_ids (Sequence[int]): the segments to encode.
        """
        pixels, labels = self._preprocess(image, label_map)
        feats = []
        for start in range(0, len(segment_ids), self.batch_size):
            chunk = torch.as_tensor(list(segment_ids[start:start + self.batch_size]))
            inside = labels[None] == chunk.view(-1, 1, 1)
            masked = torch.where(inside[:, None], pixels[None],
                                 torch.full_like(pixels[None], self.fill_value))
            feats.append(self.model.encode_image(masked.to(self.device)).float())
        return F.normalize(torch.cat(feats), dim=-1)

    def label_objects(self, image: np.ndarray, segments: np.ndarray) -> np.ndarray:
        """Object label map (0 background) of ``image`` from its coarse ``segments``."""
        ids = np.unique(segments)
        scores = self.segment_image_features(image, segments, ids.tolist()) @ self.object_text.T
        lookup = np.zeros(int(ids.max()) + 1, dtype=np.int64)
        lookup[ids] = scores.argmax(dim=1).cpu().numpy()
        return lookup[segments]

    def label_parts(self, image: np.ndarray, segments: np.ndarray,
                    object_map: np.ndarray) -> np.ndarray:
        """Part label map (0 background) from fine ``segments`` and the object label map."""
        ids, first_pixel = np.unique(segments.reshape(-1), return_index=True)
        objects = object_map.reshape(-1)[first_pixel]
        lookup = np.zeros(int(ids.max()) + 1, dtype=np.int64)
        todo = [i for i, obj in enumerate(objects) if obj in self.part_text]
        if todo:
            feats = self.segment_image_features(image, segments, ids[todo].tolist())
            for feat, i in zip(feats, todo):
                obj = int(objects[i])
                lookup[ids[i]] = self.parts_of[obj][int((feat @ self.part_text[obj].T).argmax())]
        return lookup[segments]

    def __call__(self, image: np.ndarray, coarse: np.ndarray,
                 fine: np.ndarray) -> List[np.ndarray]:
        """``[object_map, part_map]`` of one RGB image from its coarse and fine segments."""
        if image.shape[:2] != coarse.shape or coarse.shape != fine.shape:
            raise ValueError(f'image {image.shape[:2]}, coarse segments {coarse.shape} and fine '
                             f'segments {fine.shape} must have the same size')
        object_map = self.label_objects(image, coarse)
        return [object_map, self.label_parts(image, fine, object_map)]

"""A segmentation hierarchy as a ``.npz`` file that ``numpy.load`` reads.

Keys of the file (``L`` levels, superpixels first, ``H x W`` the image size):

* ``label_maps``: ``(L, H, W)`` int64, the segment id of every pixel at every level
  (``SegmentHierarchy.label_maps`` stacked);
* ``parents_0`` .. ``parents_{L-2}``: int64, the level-``k + 1`` segment of every level-``k``
  segment (``SegmentHierarchy.parents``);
* ``superpixel_ids``: the original superpixel id of every level-0 segment;
* ``num_segments``: ``(L,)`` segments per level;
* ``superpixels`` (optional): ``(H, W)`` the superpixel map the model was run with;
* ``image`` (optional): ``(H, W, 3)`` uint8 RGB, the image the model saw.
"""
import zipfile
from typing import IO, Dict, Optional, Union

import numpy as np

from cast_mm.models.segment_hierarchy import SegmentHierarchy


def hierarchy_arrays(hierarchy: SegmentHierarchy,
                     image: Optional[np.ndarray] = None,
                     superpixels: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """The arrays of the file (see the module docstring) of one hierarchy."""
    label_maps = [m.cpu().numpy() for m in hierarchy.label_maps]
    arrays = dict(label_maps=np.stack(label_maps),
                  superpixel_ids=hierarchy.superpixel_ids.cpu().numpy(),
                  num_segments=np.asarray(hierarchy.num_segments, dtype=np.int64))
    for level, parents in enumerate(hierarchy.parents):
        arrays[f'parents_{level}'] = parents.cpu().numpy()
    for name, value in (('superpixels', superpixels), ('image', image)):
        if value is None:
            continue
        value = np.asarray(value)
        if value.shape[:2] != label_maps[0].shape:
            raise ValueError(f'{name} of shape {value.shape} does not match the hierarchy '
                             f'of size {label_maps[0].shape}')
        arrays[name] = value
    return arrays


def save_hierarchy(file: Union[str, IO[bytes]],
                   hierarchy: SegmentHierarchy,
                   image: Optional[np.ndarray] = None,
                   superpixels: Optional[np.ndarray] = None) -> None:
    """Write :func:`hierarchy_arrays` to ``file`` (a path or a binary file) as
    :func:`numpy.savez_compressed` does, at deflate level 1 (several times faster than the
    default level, for files a little larger)."""
    with zipfile.ZipFile(file, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=1) as npz:
        for name, value in hierarchy_arrays(hierarchy, image, superpixels).items():
            with npz.open(f'{name}.npy', 'w', force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)

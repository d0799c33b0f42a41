"""detectron2's ``DatasetMapper`` reading images with the kit's one reader.

:func:`motion_keypoints.io.images.read_image` decodes every image of the kit (8/16-bit, grayscale,
alpha, EXIF orientation) the same way for augmentation, training, prediction, video frames and
pictures; detectron2's own ``read_image`` (PIL) reads a 16-bit PNG washed out. The trainer builds
its train and test loaders with :class:`KitDatasetMapper`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ...io.images import read_image


def to_format(image_bgr: np.ndarray, fmt: str) -> np.ndarray:
    """An HxWx3 uint8 BGR image (:func:`read_image`) in detectron2's ``cfg.INPUT.FORMAT``
    (``BGR``, ``RGB``, ``L`` or ``YUV-BT.601``), as ``detectron2.data.detection_utils.read_image``
    would return it."""
    if fmt in (None, "BGR"):
        return image_bgr
    if fmt == "RGB":
        return np.ascontiguousarray(image_bgr[:, :, ::-1])
    from PIL import Image

    return utils.convert_PIL_to_numpy(Image.fromarray(image_bgr[:, :, ::-1]), fmt)


def read_image_as(path, fmt: str) -> np.ndarray:
    """:func:`read_image` in detectron2's ``cfg.INPUT.FORMAT``."""
    return to_format(read_image(path), fmt)


class KitDatasetMapper(DatasetMapper):
    """``DatasetMapper`` whose images come from :func:`read_image` (then ``cfg.INPUT.FORMAT``);
    everything else (augmentations, annotations, keypoint flips) is detectron2's."""

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)  # it will be modified by code below
        image = read_image_as(dataset_dict["file_name"], self.image_format)
        utils.check_image_size(dataset_dict, image)

        if "sem_seg_file_name" in dataset_dict:
            sem_seg_gt = utils.read_image(dataset_dict.pop("sem_seg_file_name"), "L").squeeze(2)
        else:
            sem_seg_gt = None

        aug_input = T.AugInput(image, sem_seg=sem_seg_gt)
        transforms = self.augmentations(aug_input)
        image, sem_seg_gt = aug_input.image, aug_input.sem_seg
        image_shape = image.shape[:2]  # h, w
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg_gt is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg_gt.astype("long"))

        if self.proposal_topk is not None:
            utils.transform_proposals(
                dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk
            )
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            dataset_dict.pop("sem_seg_file_name", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

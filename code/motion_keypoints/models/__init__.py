"""Model families. Each family lives in ``models/<family>/``, registers its meta-architecture in
detectron2's ``META_ARCH_REGISTRY`` and writes the same run folder and predictions CSV
(:mod:`motion_keypoints.io.runs`, :mod:`motion_keypoints.io.predictions`), so the ensemble fuses
any of them."""

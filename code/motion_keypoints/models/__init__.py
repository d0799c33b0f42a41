"""Model families, siblings on top of :mod:`motion_keypoints.engine`. Each family lives in
``models/<family>/``, registers its meta-architecture in detectron2's ``META_ARCH_REGISTRY`` and
writes the same run folder and predictions CSV (:mod:`motion_keypoints.io.runs`,
:mod:`motion_keypoints.io.predictions`), so the ensemble fuses any of them. The families are
named in ONE place, :mod:`.registry`; neither family imports the other. Importing this package
does no work."""

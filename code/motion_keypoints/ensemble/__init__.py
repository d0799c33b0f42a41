"""The ensemble: fusion and same-person alignment as pure functions on arrays (:mod:`.fuse`),
temporal smoothing of the fusion (:mod:`.smoothing`) and the driver that loads the members' run
folders of any family, scores and writes (:mod:`.driver`). Never imports detectron2 or torch."""

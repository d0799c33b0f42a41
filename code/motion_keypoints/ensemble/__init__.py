"""The ensemble: fusion as pure functions on arrays (:mod:`.fuse`) and the driver that loads the
members' run folders, scores and writes (:mod:`.driver`). Never imports detectron2."""

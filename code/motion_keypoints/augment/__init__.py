"""Augmentation sets: configs (:mod:`.config`), transforms (:mod:`.ops`) and rendering into image
folders (:mod:`.render`)."""

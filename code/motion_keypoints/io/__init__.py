"""Files the kit reads and writes: problems, CSV tables, images, predictions, run folders.

Nothing here imports detectron2 or torch, so any model family and the ensemble share these.
"""

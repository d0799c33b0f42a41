"""Export a trained run to ONNX and predict with the export (onnxruntime).

- :mod:`.exporters`: :func:`~.exporters.export_run` (``python code/export.py --run RUN --format
  onnx``): what each family's ``.onnx`` file computes and which exporter makes it;
- :mod:`.manifest`: ``export.json`` and :func:`~.manifest.check_export` (a missing, stale or
  foreign export is one line with the command to run);
- :mod:`.runtime`: onnxruntime stand-ins for the torch models, used by ``predict.py --backend
  onnxruntime`` through the same predictors.

Nothing is imported here (torch, detectron2 and onnxruntime load with the submodules).
"""

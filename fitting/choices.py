"""The fitting layer's named choices, importable without torch (``flamefit --help`` reads them).

* :data:`OUTPUT_SETS`: what :func:`flamefit.fitting.outputs.write_fit_outputs` writes per photo:
  ``"all"`` the files of :mod:`flamefit.fitting.results`; ``"params"`` only the numbers
  (``params.npz``, ``camera.npz``, ``landmarks.npz``, ``report.json``), for large batches where
  meshes and pictures would cost more than the work (``fit`` / ``regress --outputs``).

* :data:`DETECTORS`: face and landmark detectors of :func:`flamefit.fitting.detect.detect_face`;
  ``"auto"`` is ``"mediapipe"`` (478 points) when its LiteRT interpreter is installed, else
  ``"dlib"`` (68 points; HOG detector with its CNN as the fallback).
"""

DETECTORS = ("auto", "dlib", "mediapipe", "fan")
OUTPUT_SETS = ("all", "params")

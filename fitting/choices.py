"""The fitting layer's named choices, importable without torch (``flamefit --help`` reads them).

* :data:`DETECTORS`: face and landmark detectors of :func:`flamefit.fitting.detect.detect_face`;
  ``"auto"`` is ``"mediapipe"`` (478 points) when its LiteRT interpreter is installed, else
  ``"dlib"`` (68 points; HOG detector with its CNN as the fallback).
"""

DETECTORS = ("auto", "dlib", "mediapipe", "fan")

"""The fitting layer's named choices, importable without torch (``flamefit --help`` reads them).

* :data:`DETECTORS`: face and landmark detectors of :func:`flamefit.fitting.detect.detect_face`;
  ``"auto"`` is dlib's HOG detector with its CNN as the fallback.
"""

DETECTORS = ("auto", "dlib", "fan")

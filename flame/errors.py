"""Errors raised when a model file is missing, malformed or does not fit the others."""

from __future__ import annotations

from pathlib import Path


class ModelFileError(ValueError):
    """A model file is missing, truncated, of the wrong kind or inconsistent.

    The message always names the file and says what is wrong and what to do, e.g.
    ``landmark_embedding.npy: static face index 10210 exceeds the mesh's 9976 faces;
    is this the embedding of another model?``
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

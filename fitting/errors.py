"""Errors raised when a user's input (photo, landmarks, mask) cannot be used.

Every error names the file it is about (when there is one) and says in one line what is wrong
and what to do, so a batch job can log it, skip the photo and continue.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """A user-supplied input cannot be used.

    Args:
        path: the file the problem is about, or ``None`` for in-memory inputs.
        problem: one line saying what is wrong and what to do about it.

    The message is ``"<path>: <problem>"`` (or just ``problem`` without a path).
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def __reduce__(self):
        # Keep the (path, problem) signature through pickling (multiprocessing batch jobs).
        return (type(self), (self.path, self.problem))


class NotAnImageError(InputError):
    """The file is not a readable image (wrong format, truncated, corrupt, empty)."""


class ImageTooSmallError(InputError):
    """The image is too small to hold a face that can be fitted."""


class NoFaceError(InputError):
    """No face was found in the image."""


class FaceTooSmallError(InputError):
    """A face was found but it is too small to fit reliably."""


class BadLandmarksError(InputError):
    """User-supplied landmarks have the wrong format, shape, values or lie outside the image."""


class BadMaskError(InputError):
    """A user-supplied mask cannot be read or does not match the image."""


class DetectorUnavailableError(InputError):
    """The requested face detector cannot run here (package or weights missing)."""

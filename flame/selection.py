"""Pick the head model to use: the real FLAME files when present, otherwise the shipped open model
(ICT-FaceKit Light, MIT, converted by ``flamefit convert-ict``; :data:`OPEN_MODEL_DIR`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from flamefit.flame.errors import ModelFileError

log = logging.getLogger(__name__)

DEFAULT_FLAME_DIR = Path("data") / "flame"
MODEL_NAMES = ("generic_model.pkl", "flame2023.pkl", "generic_model.npz", "flame2023.npz")
LANDMARK_NAMES = ("landmark_embedding.npy", "flame_static_embedding.pkl")
TEXTURE_NAMES = ("FLAME_texture.npz", "FLAME_albedo_from_BFM.npz")
TEMPLATE_NAME = "head_template_mesh.obj"
MASKS_NAME = "FLAME_masks.pkl"
OPEN_MODEL_DIR = Path(__file__).resolve().parent / "open_model"
OPEN_MODEL_NAME = "ICT-FaceKit Light (MIT), converted by flamefit"


@dataclass(frozen=True)
class ModelFiles:
    """The files of one head model in the FLAME formats (optional ones may be None).

    Attributes:
        kind: ``"flame"`` (the licence-gated FLAME files), ``"open"`` (the shipped open model)
            or ``"test"`` (the procedural head the test suite generates).
        folder: where the files are.
        model: the model file (``generic_model.pkl`` / ``flame2023.pkl`` / converted ``.npz``).
        landmarks: landmark embedding (DECA's or the RingNet/smplx static file), or None.
        template: UV template OBJ, or None.
        texture: albedo space (``FLAME_texture.npz`` or ``FLAME_albedo_from_BFM.npz``), or None.
        masks: ``FLAME_masks.pkl``, or None.
    """

    kind: str
    folder: Path
    model: Path
    landmarks: Path | None
    template: Path | None
    texture: Path | None
    masks: Path | None

    @property
    def is_demo(self) -> bool:
        """True for the procedural test head (kept for readers of the earlier name)."""
        return self.kind == "test"

    def describe(self) -> str:
        """One line saying which model is used, for logs and reports."""
        if self.kind == "open":
            return OPEN_MODEL_NAME
        if self.kind == "test":
            return f"procedural test head (NOT FLAME, a test fixture of flamefit) from {self.folder}"
        return f"FLAME ({self.model.name}) from {self.folder}"


def _kind_of(folder: Path) -> str:
    """``"open"``, ``"test"`` or ``"flame"``, from the README the converters write."""
    try:
        first = (folder / "README.txt").read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return "flame"
    if "ICT-FaceKit" in first:
        return "open"
    if "demo head" in first:
        return "test"
    return "flame"


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def files_in(folder: str | Path, kind: str | None = None) -> ModelFiles | None:
    """The model files found in ``folder``, or None when it holds no model file; ``kind`` is
    read from the folder's README when not given."""
    folder = Path(folder)
    model = _first_existing(folder, MODEL_NAMES)
    if model is None:
        return None
    return ModelFiles(
        kind=kind or _kind_of(folder),
        folder=folder,
        model=model,
        landmarks=_first_existing(folder, LANDMARK_NAMES),
        template=_first_existing(folder, (TEMPLATE_NAME,)),
        texture=_first_existing(folder, TEXTURE_NAMES),
        masks=_first_existing(folder, (MASKS_NAME,)),
    )


def select_model(flame_dir: str | Path | None = None, open_model: bool = False) -> ModelFiles:
    """Pick FLAME when its files are present, otherwise the shipped open model; log the choice.

    Args:
        flame_dir: folder with the FLAME files (or any model in the FLAME formats). When given
            explicitly it must hold a model (no silent fall-back). Default:
            ``$FLAMEFIT_FLAME_DIR`` or ``data/flame``; when that holds no model, the open model.
        open_model: use the open model even if FLAME is present.

    Raises:
        ModelFileError: ``flame_dir`` was given but holds no model file, or the installed
            package lacks its open model.
    """
    if not open_model:
        explicit = flame_dir is not None
        folder = Path(flame_dir or os.environ.get("FLAMEFIT_FLAME_DIR") or DEFAULT_FLAME_DIR)
        found = files_in(folder)
        if found is not None:
            if found.landmarks is None:
                log.warning("no landmark embedding (landmark_embedding.npy) in %s: landmark "
                            "fitting needs it (see data/README.md)", folder)
            log.info("using %s", found.describe())
            return found
        if explicit:
            raise ModelFileError(
                folder,
                f"no FLAME model found (looked for {', '.join(MODEL_NAMES)}): download it from "
                "the FLAME website (see data/README.md), or run without --flame-dir to use the "
                "open model",
            )
    found = files_in(OPEN_MODEL_DIR, kind="open")
    if found is None:
        raise ModelFileError(OPEN_MODEL_DIR, "the open model's files are missing from the installed "
                                             "package; reinstall flamefit")
    log.info("using %s (put the FLAME files in data/flame/ to use FLAME)", found.describe())
    return found

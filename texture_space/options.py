"""Options of ``flamefit build-texture-space`` as a dataclass, importable without torch: the
command line takes its defaults from here, :func:`flamefit.texture_space.build.build_texture_space`
takes an instance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class BuildOptions:
    """Options of :func:`build_texture_space` (the CLI's flags).

    Attributes:
        components: ``K``, components of the space (capped at the training photos - 1).
        rounds: fit-unwrap-PCA rounds.
        resolution: side of the UV maps and of the saved space (256 or 512; any size works).
        batch_size: photos fitted and unwrapped together.
        device: torch device of fitting and unwrapping, or ``"auto"`` (CUDA when available).
        iters: ``(rigid, full)`` optimiser steps per fit.
        fit_resolution: crop side the fit runs at.
        unwrap_crop: crop side the photos are unwrapped from (default ``max(resolution,
            fit_resolution)``): the same crop square, re-cut from the photo at this size.
        landmarks: a folder of ``<stem>.npy`` (or .txt/.pts) 68x2 landmarks in original photo
            pixels, used instead of detection; or None.
        mask: a folder of ``<stem>.png`` masks (white = use) limiting the photometric term and
            the unwrapped pixels; or None.
        init_space: a texture space (``FLAME_texture.npz`` layout) to start round 0 with.
        bootstrap: round 0 without ``init_space``: ``"constant"`` skin albedo or ``"model"``
            (the model folder's own albedo space, e.g. the open model's).
        flame_dir, open_model: which head model (see :func:`flamefit.flame.selection.select_model`).
        camera: ``"orthographic"`` or ``"perspective"``.
        seed: seed of the fits and of the held-out choice.
        min_skin: least fraction of the face region's texels a photo must show.
        holdout: fraction of the usable photos held out for generalisation (at least 2 when
            at least 5 are usable; none below).
        completion: method of :func:`flamefit.texture_space.completion.complete_textures`.
        completion_rank: rank of the low-rank imputation.
        pca_method: ``"gram"``, ``"randomized"`` or ``"auto"`` (randomised when ``K + 10``
            is under a quarter of the photos).
        detector: face/landmark detector of :func:`flamefit.fitting.prepare.prepare_image`.
        backend: rasteriser (``"auto"``: nvdiffrast on CUDA when installed).
        n_shape, n_expression: model components fitted.
        keep_stacks: keep the round's memory-mapped map stacks (large) after its space is saved.
        from_fits: a ``flamefit fit`` output folder whose results replace round 0's fits (the
            photos are those its reports name; no other inputs may be given); or None.
    """

    components: int = 50
    rounds: int = 2
    resolution: int = 256
    batch_size: int = 8
    device: str = "auto"
    iters: tuple[int, int] = (100, 300)
    fit_resolution: int = 224
    unwrap_crop: int | None = None
    landmarks: Path | None = None
    mask: Path | None = None
    init_space: Path | None = None
    bootstrap: str = "constant"
    flame_dir: Path | None = None
    open_model: bool = False
    camera: str = "orthographic"
    seed: int = 0
    min_skin: float = 0.1
    holdout: float = 0.1
    completion: str = "combined"
    completion_rank: int = 10
    pca_method: str = "auto"
    detector: str = "auto"
    backend: str = "auto"
    n_shape: int = 100
    n_expression: int = 50
    keep_stacks: bool = False
    from_fits: Path | None = None

"""Where MediaPipe's 478 points lie on the head model in use, found by rendering it.

Nothing here comes from a published landmark mapping: for any model in the FLAME format the
embedding is *self-calibrated*:

1. render the model with its albedo over several identities, expressions, yaws and pitches
   (:func:`calibration_views`);
2. run :func:`flamefit.fitting.mediapipe_detect.dense_landmarks` on each render;
3. back-project every predicted point through the rasteriser onto the mesh (the triangle under
   it and the point's barycentric coordinates in that triangle), carry it to the neutral
   template, and keep the median position over the near-frontal views, snapped to the surface;
4. reproject that surface point into every view where it is visible and measure its distance to
   the prediction: the **spread**, in pixels of a 224² render of the head (the framing of the
   project's synthetic renders, :func:`flamefit.fitting.synthetic.synthetic_batch`; the fit's own
   224² crop is tighter, its pixels are ~1.4x smaller, :attr:`DenseEmbedding.fit_crop_factor`).
   Points whose median spread exceeds :data:`MAX_SPREAD_PX` are dropped: that removes the outer face contour, which
   slides over the surface with yaw (the 68-point term keeps the contour), and anything the
   network does not see the same way on every face.

The result (:class:`DenseEmbedding`) is cached per model file (its SHA-256) under the flamefit
cache folder; the embedding of the shipped open model ships with flamefit. It also holds a
478 -> 68 conversion (:attr:`DenseEmbedding.to_68`): each iBUG point as an affine combination of
nearby dense points, least-squares fitted to the model's own 68 landmarks over the same renders.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from flamefit.fitting import mediapipe_detect as mp
from flamefit.fitting.crop import crop_box
from flamefit.flame import landmark_sets as ibug

#: Version of the calibration recipe; a cached embedding of another version is recomputed.
EMBEDDING_VERSION = 1
#: Points whose median reprojection spread (px of a 224² head render) is above this are not
#: fitted.
MAX_SPREAD_PX = 1.5
#: Views with |yaw| at most this (degrees) vote for a point's position.
VOTING_YAW_DEG = 15.0
#: Render size of the calibration views; spreads are reported at 224².
RENDER_SIZE = 448
REPORT_SIZE = 224
#: Dense points each iBUG point of :attr:`DenseEmbedding.to_68` is made of.
NEIGHBOURS_PER_IBUG_POINT = 6

#: Fitting regions of the dense points (codes stored in :attr:`DenseEmbedding.regions`).
REGIONS = ("face", "brows", "eyes", "irises", "nose", "lips")
_IBUG_REGIONS = {"brows": ibug.BROWS, "eyes": ibug.EYES, "nose": ibug.NOSE, "lips": ibug.MOUTH}

SHIPPED_EMBEDDING = Path(__file__).resolve().parent / "open_model_dense_embedding.npz"


@dataclass
class DenseEmbedding:
    """MediaPipe's points on one head model.

    Attributes:
        point_ids: ``(K,)`` int64 indices (into the 478) of the points the fit uses.
        faces: ``(K,)`` int64 triangle of each, into the model's ``faces``.
        bary: ``(K, 3)`` float32 barycentric coordinates in that triangle.
        regions: ``(K,)`` int64 index into :data:`REGIONS`.
        spread_px: ``(478,)`` median reprojection spread of every point (px of a 224² head
            render; NaN where a point was never visible), kept and dropped alike.
        fit_crop_factor: pixels of the fit's 224² crop per pixel of that render (median over
            the views).
        to_68: ``(68, 478)`` float64 affine weights (rows sum to 1): iBUG points from dense ones.
        model_sha256: the model file it was calibrated for.
        n_views: how many renders it was calibrated on.
    """

    point_ids: np.ndarray
    faces: np.ndarray
    bary: np.ndarray
    regions: np.ndarray
    spread_px: np.ndarray
    to_68: np.ndarray
    model_sha256: str
    n_views: int
    fit_crop_factor: float

    def summary(self) -> dict:
        """Figures for reports: points kept, median spread of the kept ones, per region."""
        kept = self.spread_px[self.point_ids]
        return {"points_kept": int(len(self.point_ids)), "points_total": mp.N_DENSE,
                "median_spread_px_224_render": round(float(np.median(kept)), 3),
                "median_spread_px_224_fit_crop": round(float(np.median(kept)) * self.fit_crop_factor, 3),
                "median_spread_px_224_render_all_points": round(float(np.nanmedian(self.spread_px)), 3),
                "views": self.n_views,
                "per_region": {name: int((self.regions == i).sum()) for i, name in enumerate(REGIONS)}}

    def save(self, path: str | Path) -> Path:
        from flamefit.utils import write_npz

        return write_npz(path, version=np.array(EMBEDDING_VERSION), point_ids=self.point_ids,
                         faces=self.faces, bary=self.bary, regions=self.regions,
                         spread_px=self.spread_px, to_68=self.to_68,
                         model_sha256=np.array(self.model_sha256), n_views=np.array(self.n_views),
                         fit_crop_factor=np.array(self.fit_crop_factor))

    @classmethod
    def load(cls, path: str | Path) -> "DenseEmbedding | None":
        """The embedding in ``path``, or None when missing, unreadable or of another version."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["version"]) != EMBEDDING_VERSION:
                    return None
                return cls(point_ids=data["point_ids"].astype(np.int64), faces=data["faces"].astype(np.int64),
                           bary=data["bary"].astype(np.float32), regions=data["regions"].astype(np.int64),
                           spread_px=data["spread_px"], to_68=data["to_68"],
                           model_sha256=str(data["model_sha256"]), n_views=int(data["n_views"]),
                           fit_crop_factor=float(data["fit_crop_factor"]))
        except (OSError, KeyError, ValueError):
            return None

    def convert_to_68(self, dense: np.ndarray) -> np.ndarray:
        """``(..., 478, 2)`` dense points -> ``(..., 68, 2)`` iBUG points (same frame)."""
        return np.einsum("lk,...kc->...lc", self.to_68, dense)


# -- views -------------------------------------------------------------------------------------
@dataclass
class CalibrationView:
    """One render: ``image (R, R, 3) uint8``, the posed vertices projected by its camera
    ``vertices_px (V, 3)`` (screen pixels and depth), ``landmarks_px (68, 2)`` (the model's own,
    screen pixels), ``face_index (R, R)`` (triangle per pixel, -1 on the background) and
    ``yaw_deg``."""

    image: np.ndarray
    vertices_px: np.ndarray
    landmarks_px: np.ndarray
    face_index: np.ndarray
    yaw_deg: float


def calibration_views(scene, n_identities: int = 8, yaws=(-40, -20, -8, 0, 8, 20, 40),
                      seed: int = 0, progress: Callable[[int, int], None] | None = None
                      ) -> list[CalibrationView]:
    """Renders of the model over identities (:func:`flamefit.fitting.synthetic.random_parameters`'
    shapes; albedo coefficients at 0.35 of its draw, near the mean skin), expressions (neutral
    for half of the identities, half of a random draw and a slightly open jaw for the others),
    ``yaws`` (degrees) and a small random pitch per identity, eyes straight ahead, on a grey
    background. The triangle under each pixel is rasterised once more (the scene's render does
    not return it; calibration runs once per model file)."""
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame.pose_layout import EYES, GLOBAL, JAW

    generator = torch.Generator().manual_seed(seed)
    views = []
    total = n_identities * len(yaws)
    for identity in range(n_identities):
        params = random_parameters(scene, len(yaws), generator, spread=1.0)
        params.shape[:] = params.shape[:1]
        # skin tones near the albedo model's mean (its extremes are not faces the network has
        # seen: yellow or purple skin moves its points), light as drawn
        params.texture[:] = params.texture[:1] * 0.35
        params.light[:] = params.light[:1]
        if identity % 2 == 0:
            params.expression.zero_()
            params.pose[:, JAW] = 0.0
        else:  # a mild expression, the jaw a little open
            params.expression[:] = params.expression[:1] * 0.5
            params.pose[:, JAW] = params.pose[:1, JAW] * 0.5
        params.pose[:, EYES] = 0.0
        pitch = float(torch.randn(1, generator=generator)) * 0.1
        global_pose = torch.zeros(len(yaws), 3)
        global_pose[:, 0] = pitch
        global_pose[:, 1] = torch.deg2rad(torch.tensor(yaws, dtype=torch.float32))
        params.pose[:, GLOBAL] = global_pose
        with torch.no_grad():
            rendered = scene.render(params, RENDER_SIZE)
            camera = scene.camera(params, RENDER_SIZE)
            screen = camera.project(rendered.vertices)
            fragments = _rasterize(scene, screen)
        background = 0.3 + 0.4 * torch.rand(len(yaws), 1, 1, 1, generator=generator)  # grey
        images = (rendered.image + (1 - rendered.alpha) * background).clamp(0, 1)
        for i, yaw in enumerate(yaws):
            views.append(CalibrationView(
                image=(images[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8),
                vertices_px=screen[i].numpy().astype(np.float64),
                landmarks_px=rendered.landmarks_px[i].numpy().astype(np.float64),
                face_index=fragments[i], yaw_deg=float(yaw)))
            if progress:
                progress(len(views), total)
    return views


def _rasterize(scene, screen: torch.Tensor) -> np.ndarray:
    """``(B, R, R)`` int64 triangle per pixel (-1 background) of projected vertices."""
    from flamefit.renderer.rasterize import rasterize

    fragments = rasterize(screen, scene.flame.faces, (RENDER_SIZE, RENDER_SIZE),
                          cull_backfaces=scene.cull_backfaces)
    return fragments.face_index.numpy()


# -- calibration -------------------------------------------------------------------------------
def _detect_in_view(view: CalibrationView) -> np.ndarray:
    """``(478, 2)`` predicted points in the view's screen pixels (pixel centres at +0.5)."""
    landmarks_index = view.landmarks_px - 0.5
    box = np.concatenate([landmarks_index.min(axis=0), landmarks_index.max(axis=0)])
    dense = mp.dense_landmarks(view.image, mp.region_from_box(box))
    return dense.points + 0.5


def _back_project(view: CalibrationView, faces: np.ndarray, points: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Triangle ``(N,)`` (-1 on background) and barycentrics ``(N, 3)`` under screen points."""
    size = view.face_index.shape[0]
    cols = np.clip(np.floor(points[:, 0]).astype(int), 0, size - 1)
    rows = np.clip(np.floor(points[:, 1]).astype(int), 0, size - 1)
    triangles = view.face_index[rows, cols]
    bary = np.zeros((len(points), 3))
    hit = triangles >= 0
    corners = view.vertices_px[faces[triangles[hit]], :2]  # (n, 3, 2)
    bary[hit] = _barycentric_2d(corners, points[hit])
    return triangles, bary


def _barycentric_2d(corners: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of ``points (N, 2)`` in triangles ``corners (N, 3, 2)``."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, points - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    denom = np.where(np.abs(d00 * d11 - d01 * d01) < 1e-12, 1e-12, d00 * d11 - d01 * d01)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    return np.clip(np.stack([1 - v - w, v, w], axis=1), 0.0, 1.0)


def calibrate(scene, model_sha256: str, n_identities: int = 8, seed: int = 0,
              progress: Callable[[str, int, int], None] | None = None) -> DenseEmbedding:
    """Self-calibrate the dense embedding of ``scene``'s model (steps in the module docstring).

    Args:
        scene: a :class:`flamefit.fitting.scene.HeadScene` on the CPU with its albedo model.
        model_sha256: recorded in the result (the cache key).
        n_identities: identities rendered (each at 7 yaws).
        progress: called with (phase, done, total).
    """
    import trimesh

    faces = scene.flame.faces.cpu().numpy().astype(np.int64)
    views = calibration_views(scene, n_identities, seed=seed,
                              progress=None if progress is None else lambda d, t: progress("render", d, t))
    predictions = []
    for i, view in enumerate(views):
        predictions.append(_detect_in_view(view))
        if progress:
            progress("detect", i + 1, len(views))
    predictions = np.stack(predictions)  # (N_views, 478, 2) screen px
    with torch.no_grad():
        neutral = scene.flame(shape=torch.zeros(1, scene.flame.n_shape),
                              expression=torch.zeros(1, scene.flame.n_expression),
                              pose=torch.zeros(1, scene.flame.n_joints * 3))
    template = neutral.vertices[0].numpy()
    ibug_template = neutral.landmarks_3d[0].numpy()  # the model's own 68 points, neutral

    # 3. vote on the template: first over the near-frontal views, then (twice) over every
    # view where the current estimate is visible
    crop_scale = np.array([REPORT_SIZE / np.ptp(crop_box(view.landmarks_px - 0.5)[[0, 2]])
                           for view in views])
    hits = [_back_project(view, faces, points) for view, points in zip(views, predictions)]
    voters = np.array([[abs(view.yaw_deg) <= VOTING_YAW_DEG] * mp.N_DENSE for view in views])
    for _ in range(3):
        votes = np.full((len(views), mp.N_DENSE, 3), np.nan)
        for v, (triangles, bary) in enumerate(hits):
            use = voters[v] & (triangles >= 0)
            votes[v, use] = np.einsum("nk,nkc->nc", bary[use], template[faces[triangles[use]]])
        with warnings.catch_warnings():  # points never seen in any view stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(votes, axis=0)  # (478, 3)
        valid = np.isfinite(median).all(axis=1)
        snapped, point_faces = closest_surface_points(template, faces, np.where(valid[:, None], median, 0.0))
        point_bary = trimesh.triangles.points_to_barycentric(template[faces[point_faces]], snapped)
        point_bary = np.clip(np.nan_to_num(point_bary), 0, 1)
        point_bary /= np.maximum(point_bary.sum(axis=1, keepdims=True), 1e-12)
        visible, distance = _reprojection(views, predictions, faces, point_faces, point_bary, valid)
        voters = visible

    # 4. reprojection spread (px of a 224² render) over the views where a point is visible
    spread = np.where(visible, distance * (REPORT_SIZE / RENDER_SIZE), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median_spread = np.nanmedian(spread, axis=0)
    kept = np.flatnonzero(valid & np.isfinite(median_spread) & (median_spread <= MAX_SPREAD_PX))

    to_68 = _fit_to_68(views, predictions, np.where(valid[:, None], snapped, np.nan), ibug_template)
    return DenseEmbedding(
        point_ids=kept, faces=point_faces[kept], bary=point_bary[kept].astype(np.float32),
        regions=_regions(snapped, ibug_template)[kept], spread_px=median_spread,
        to_68=to_68, model_sha256=model_sha256, n_views=len(views),
        fit_crop_factor=float(np.median(crop_scale) * RENDER_SIZE / REPORT_SIZE))


def closest_surface_points(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray,
                           candidates: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The nearest point of a triangle mesh to each of ``points (N, 3)``: ``(N, 3)`` positions
    and ``(N,)`` triangle indices (searched among the ``candidates`` triangles whose centroids
    are nearest)."""
    import trimesh
    from scipy.spatial import cKDTree

    triangles = vertices[faces]
    _, nearest = cKDTree(triangles.mean(axis=1)).query(points, k=min(candidates, len(faces)))
    nearest = nearest.reshape(len(points), -1)
    closest = trimesh.triangles.closest_point(triangles[nearest.ravel()],
                                              np.repeat(points, nearest.shape[1], axis=0))
    closest = closest.reshape(len(points), nearest.shape[1], 3)
    best = np.linalg.norm(closest - points[:, None], axis=2).argmin(axis=1)
    rows = np.arange(len(points))
    return closest[rows, best], nearest[rows, best].astype(np.int64)


def _reprojection(views, predictions, faces, point_faces, point_bary, valid
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per view and point: ``visible (N_views, 478)`` (in front, not hidden by another part of the
    head) and the ``distance (N_views, 478)`` between the embedded point's projection and the
    network's prediction (render pixels)."""
    visible = np.zeros((len(views), mp.N_DENSE), bool)
    distance = np.full((len(views), mp.N_DENSE), np.nan)
    for v, (view, points) in enumerate(zip(views, predictions)):
        projected = np.einsum("nk,nkc->nc", point_bary, view.vertices_px[faces[point_faces]])
        cols = np.clip(np.floor(projected[:, 0]).astype(int), 0, RENDER_SIZE - 1)
        rows = np.clip(np.floor(projected[:, 1]).astype(int), 0, RENDER_SIZE - 1)
        under = view.face_index[rows, cols]
        visible[v] = valid & (under >= 0) & _same_surface(np.maximum(under, 0), point_faces, faces)
        distance[v] = np.linalg.norm(projected[:, :2] - points, axis=1)
    return visible, distance


def _same_surface(under: np.ndarray, expected: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """True where the triangle seen at a point shares a vertex with the point's own triangle
    (the point is not hidden behind another part of the head)."""
    seen = faces[under]
    own = faces[expected]
    return (seen[:, :, None] == own[:, None, :]).any(axis=(1, 2))


def _fit_to_68(views, predictions, dense_template, ibug_template) -> np.ndarray:
    """``(68, 478)`` affine weights: each iBUG point from its nearest dense points on the
    template, least squares over the views against the model's own projected 68 landmarks."""
    targets = np.stack([view.landmarks_px for view in views])  # (N, 68, 2)
    weights = np.zeros((ibug.N_LANDMARKS, mp.N_DENSE))
    usable = np.isfinite(dense_template).all(axis=1)
    usable[mp.N_MESH:] = False  # irises move with the gaze, not with the face
    candidates = np.flatnonzero(usable)
    for point in range(ibug.N_LANDMARKS):
        distance = np.linalg.norm(dense_template[candidates] - ibug_template[point], axis=1)
        near = candidates[np.argsort(distance)[:NEIGHBOURS_PER_IBUG_POINT]]
        # affine: w sums to 1 -> solve for the last weight's complement
        basis = predictions[:, near, :] - predictions[:, near[-1:], :]  # (N, k, 2)
        design = basis[:, :-1, :].transpose(0, 2, 1).reshape(-1, len(near) - 1)
        rhs = (targets[:, point, :] - predictions[:, near[-1], :]).reshape(-1)
        solution, *_ = np.linalg.lstsq(design, rhs, rcond=None)
        weights[point, near[:-1]] = solution
        weights[point, near[-1]] = 1.0 - solution.sum()
    return weights


def _regions(dense_template: np.ndarray, ibug_template: np.ndarray) -> np.ndarray:
    """``(478,)`` region codes: irises by index; other points take the region of the nearest
    model iBUG landmark when it is within a quarter of the inter-ocular distance, else "face"."""
    iod = float(np.linalg.norm(ibug_template[36] - ibug_template[45]))
    codes = np.zeros(mp.N_DENSE, np.int64)
    labels = np.full(ibug.N_LANDMARKS, -1)
    for name, index_set in _IBUG_REGIONS.items():
        labels[ibug.indices(index_set)] = REGIONS.index(name)
    inner = ibug.indices(ibug.INNER)
    for point in range(mp.N_MESH):
        distance = np.linalg.norm(ibug_template[inner] - dense_template[point], axis=1)
        nearest = int(np.argmin(distance))
        if distance[nearest] < 0.25 * iod:
            codes[point] = labels[inner[nearest]]
    codes[mp.N_MESH:] = REGIONS.index("irises")
    return codes


# -- cache -------------------------------------------------------------------------------------
def model_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cache_path(sha256: str) -> Path:
    from flamefit.flame.demo_head.writer import default_cache_dir

    return default_cache_dir() / "dense_embeddings" / f"{sha256[:16]}_v{EMBEDDING_VERSION}.npz"


def dense_embedding_for(scene, model_file: str | Path,
                        log: Callable[[str], None] = print) -> DenseEmbedding:
    """The model's embedding: shipped (open model), cached, or calibrated now and cached."""
    sha256 = model_sha256(model_file)
    for path in (SHIPPED_EMBEDDING, cache_path(sha256)):
        found = DenseEmbedding.load(path) if path.is_file() else None
        if found is not None and found.model_sha256 == sha256:
            return found
    log(f"calibrating the MediaPipe landmark embedding for {model_file} "
        "(once per model file, about a minute on a CPU)")
    import copy

    on_cpu = scene if next(scene.buffers()).device.type == "cpu" else copy.deepcopy(scene).cpu()
    embedding = calibrate(on_cpu, sha256)
    embedding.save(cache_path(sha256))
    return embedding

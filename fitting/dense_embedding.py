"""Where MediaPipe's 478 points lie on the head model in use, found by rendering it.

Nothing here comes from a published landmark mapping: for any model in the FLAME format the
embedding is *self-calibrated*:

1. render the model with its albedo over several identities, expressions, yaws and pitches
   (:func:`calibration_views`);
2. run :func:`flamefit.fitting.mediapipe_detect.dense_landmarks` on each render;
3. put each point where it best explains those predictions (:func:`place_points`): every view's
   back-projection of it through the rasteriser (a triangle and barycentrics, the same on every
   render of the model) is a candidate, the one with the lowest median reprojection distance
   over the views wins, and reweighted least squares then refine it over the neighbouring
   triangles, the barycentrics and an **offset along the triangle's normal** (MediaPipe's point
   is a 3D point of its own face model, often a few millimetres above or below this model's
   skin; on the skin it would slide with yaw);
4. reproject that point into every view where it is visible and measure its distance to the
   prediction: the **spread** (median over the views), in pixels of a 224² render of the head
   (the framing of the project's synthetic renders,
   :func:`flamefit.fitting.synthetic.synthetic_batch`; the fit's own 224² crop is tighter, its
   pixels are ~1.5x smaller, :attr:`DenseEmbedding.fit_crop_factor`). Points whose spread
   exceeds :data:`MAX_SPREAD_PX` are dropped, but for each region's best few: that removes the
   outer face contour, which slides over the surface with yaw (the 68-point term keeps the
   contour), and anything the network does not see the same way on every face.

The spread over the calibration renders is in-sample (the positions were chosen on them);
``benchmarks/bench_landmarks.py`` also measures it on held-out renders
(:data:`HELD_OUT_SEED`: other identities, expressions, lights and backgrounds, the same yaws) with
:func:`spread_on_views`.

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
EMBEDDING_VERSION = 2
#: Points whose median reprojection spread (px of a 224² head render) is above this are not
#: fitted, except a region's best :data:`MIN_REGION_POINTS` within :data:`REGION_MAX_SPREAD_PX`
#: (the brows: no point there is as consistent as the eyes', yet the fit needs some).
MAX_SPREAD_PX = 1.0
MIN_REGION_POINTS = 8
REGION_MAX_SPREAD_PX = 1.5
#: Identities rendered for the calibration (each at 7 yaws), and the seed of the held-out
#: renders :func:`spread_on_views` is measured on in the benchmark (other identities).
N_IDENTITIES = 16
HELD_OUT_SEED = 1
#: A position must be visible in at least this fraction of the views to be chosen.
MIN_VISIBLE_FRACTION = 0.5
#: Bound on a point's offset along its triangle's normal (metres).
MAX_OFFSET_M = 0.01
#: Iterations of the reweighted least squares, and the distance (render px) below which a view's
#: weight stops growing.
REFINE_ITERATIONS = 20
IRLS_FLOOR_PX = 0.05
#: Candidate positions scored at once (bounds memory: ~N_views x 478 x this x 3 x 3 floats).
CANDIDATE_CHUNK = 16
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
        offset: ``(K,)`` float32 metres along the triangle's unit normal ``(v1 - v0) x (v2 - v0)``
            (outward for counter-clockwise triangles): the point is ``bary`` on the triangle plus
            this (:func:`embedded_points`).
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
    offset: np.ndarray
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
                         faces=self.faces, bary=self.bary, offset=self.offset, regions=self.regions,
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
                           bary=data["bary"].astype(np.float32), offset=data["offset"].astype(np.float32),
                           regions=data["regions"].astype(np.int64),
                           spread_px=data["spread_px"], to_68=data["to_68"],
                           model_sha256=str(data["model_sha256"]), n_views=int(data["n_views"]),
                           fit_crop_factor=float(data["fit_crop_factor"]))
        except (OSError, KeyError, ValueError):
            return None

    def convert_to_68(self, dense: np.ndarray) -> np.ndarray:
        """``(..., 478, 2)`` dense points -> ``(..., 68, 2)`` iBUG points (same frame)."""
        return np.einsum("lk,...kc->...lc", self.to_68, dense)


def embedded_points(vertices: torch.Tensor, faces: torch.Tensor, point_faces: torch.Tensor,
                    bary: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``(B, K, 3)`` embedded points on posed ``vertices (B, V, 3)`` (model space, metres):
    barycentrics ``bary (K, 3)`` in triangles ``point_faces (K,)`` of ``faces (F, 3)``, moved by
    ``offset (K,)`` metres along each triangle's unit normal. Differentiable."""
    corners = vertices[:, faces[point_faces]]  # (B, K, 3 corners, 3)
    normal = torch.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    on_surface = torch.einsum("kc,bkcd->bkd", bary.to(vertices.dtype), corners)
    return on_surface + offset.to(vertices.dtype)[:, None] * normal


# -- views -------------------------------------------------------------------------------------
@dataclass
class CalibrationView:
    """One render: ``image (R, R, 3) uint8``, the posed vertices projected by its camera
    ``vertices_px (V, 3)`` (screen pixels and depth), ``landmarks_px (68, 2)`` (the model's own,
    screen pixels), ``face_index (R, R)`` (triangle per pixel, -1 on the background),
    ``normal_px (F, 2)`` (screen pixels a point moves per metre along its triangle's unit
    normal; exact for the orthographic camera, linearised at the centroid for a perspective
    one) and ``yaw_deg``."""

    image: np.ndarray
    vertices_px: np.ndarray
    landmarks_px: np.ndarray
    face_index: np.ndarray
    normal_px: np.ndarray
    yaw_deg: float


def calibration_views(scene, n_identities: int = N_IDENTITIES, yaws=(-40, -20, -8, 0, 8, 20, 40),
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
            normal_px = _normal_motion(rendered.vertices, scene.flame.faces, camera)
        background = 0.3 + 0.4 * torch.rand(len(yaws), 1, 1, 1, generator=generator)  # grey
        images = (rendered.image + (1 - rendered.alpha) * background).clamp(0, 1)
        for i, yaw in enumerate(yaws):
            views.append(CalibrationView(
                image=(images[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8),
                vertices_px=screen[i].numpy().astype(np.float64),
                landmarks_px=rendered.landmarks_px[i].numpy().astype(np.float64),
                face_index=fragments[i], normal_px=normal_px[i], yaw_deg=float(yaw)))
            if progress:
                progress(len(views), total)
    return views


def _normal_motion(vertices: torch.Tensor, faces: torch.Tensor, camera, step: float = 1e-3) -> np.ndarray:
    """``(B, F, 2)`` float64 screen pixels per metre along each triangle's unit normal, at its
    centroid (posed ``vertices (B, V, 3)``, model space)."""
    from flamefit.renderer.shading import face_normals

    vertices = vertices.double()
    centroids = vertices[:, faces].mean(dim=2)  # (B, F, 3)
    moved = centroids + step * face_normals(vertices, faces)
    return ((camera.project(moved) - camera.project(centroids))[..., :2] / step).numpy().astype(np.float64)


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


def _back_project(face_index: np.ndarray, vertices_px: np.ndarray, faces: np.ndarray, points: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Triangle ``(N,)`` (-1 on background) and barycentrics ``(N, 3)`` (zeros there) under
    screen points ``points (N, 2)`` of a view (its ``face_index (R, R)`` and ``vertices_px``)."""
    size = face_index.shape[0]
    cols = np.clip(np.floor(points[:, 0]).astype(int), 0, size - 1)
    rows = np.clip(np.floor(points[:, 1]).astype(int), 0, size - 1)
    triangles = face_index[rows, cols]
    bary = np.zeros((len(points), 3))
    hit = triangles >= 0
    corners = vertices_px[faces[triangles[hit]], :2]  # (n, 3, 2)
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
    return _on_triangle(np.stack([1 - v - w, v, w], axis=-1))


def _on_triangle(bary: np.ndarray) -> np.ndarray:
    """``(..., 3)`` barycentrics clipped into the triangle (non-negative, summing to 1)."""
    bary = np.clip(bary, 0.0, 1.0)
    return bary / np.maximum(bary.sum(axis=-1, keepdims=True), 1e-12)


@dataclass
class _Stack:
    """The calibration views stacked: ``vertices_px (N, V, 3)``, ``face_index (N, R, R)``,
    ``normal_px (N, F, 2)``, ``predictions (N, P, 2)`` (screen pixels of the renders)."""

    vertices_px: np.ndarray
    face_index: np.ndarray
    normal_px: np.ndarray
    predictions: np.ndarray
    faces: np.ndarray

    @classmethod
    def of(cls, views: list[CalibrationView], predictions: np.ndarray, faces: np.ndarray) -> "_Stack":
        return cls(np.stack([view.vertices_px for view in views]), np.stack([view.face_index for view in views]),
                   np.stack([view.normal_px for view in views]), predictions, faces)

    def distances(self, point_faces: np.ndarray, bary: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """``(N, P, ...)`` distance (render pixels) between the network's prediction and
        positions ``point_faces (P, ...)``, ``bary (P, ..., 3)``, ``offset (P, ...)``
        (metres along the triangle's normal) projected into every view; NaN where the surface
        point is not visible (behind the head, or hidden by another part of it)."""
        corners = self.vertices_px[:, self.faces[point_faces]]  # (N, P, ..., 3, 3)
        projected = np.einsum("...k,n...kc->n...c", bary, corners)
        moved = projected[..., :2] + offset[..., None] * self.normal_px[:, point_faces]
        size = self.face_index.shape[1]
        cols = np.clip(np.floor(projected[..., 0]).astype(int), 0, size - 1)
        rows = np.clip(np.floor(projected[..., 1]).astype(int), 0, size - 1)
        views = np.arange(len(corners)).reshape((-1,) + (1,) * (projected.ndim - 2))
        under = self.face_index[views, rows, cols]
        seen = self.faces[np.maximum(under, 0)]  # (N, P, ..., 3)
        # visible: the triangle seen there shares a vertex with the point's own
        same = (seen[..., :, None] == self.faces[point_faces][..., None, :]).any(axis=(-1, -2))
        targets = self.predictions.reshape(self.predictions.shape[:2] + (1,) * (projected.ndim - 3) + (2,))
        return np.where((under >= 0) & same, np.linalg.norm(moved - targets, axis=-1), np.nan)

    def median_distance(self, point_faces: np.ndarray, bary: np.ndarray, offset: np.ndarray,
                        min_views: int = 1) -> np.ndarray:
        """``(P, ...)`` median over the views of :meth:`distances`; inf where visible in
        fewer than ``min_views``."""
        distance = self.distances(point_faces, bary, offset)
        with warnings.catch_warnings():  # all-NaN columns: never visible
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(distance, axis=0)
        return np.where(np.isfinite(distance).sum(axis=0) >= min_views, median, np.inf)


def place_points(stack: _Stack, neighbours) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each of the P points best explains the network's predictions over the views.

    1. **Candidates**: each view's back-projection of the point (triangle, barycentrics) is a
       candidate; the one with the lowest median reprojection distance over the views where it
       is visible (at least :data:`MIN_VISIBLE_FRACTION` of them) wins.
    2. **Refinement**: on the triangles sharing a vertex with the winner (``neighbours``, a
       callable: ``(P,)`` triangles -> ``(P, T)`` triangles), iteratively reweighted least
       squares minimise the sum of reprojection distances (a robust, median-like aggregate)
       over the barycentrics (kept in the triangle) and an offset along the triangle's
       normal (within :data:`MAX_OFFSET_M`; MediaPipe's points need not lie on this model's
       skin, and a point above or below it moves with yaw); the triangle whose solution has
       the lowest median distance wins.

    Returns ``faces (P,)``, ``bary (P, 3)``, ``offset (P,)`` metres; a point never
    visible gets triangle 0 and an infinite median later.
    """
    n_views = len(stack.predictions)
    min_views = int(np.ceil(MIN_VISIBLE_FRACTION * n_views))
    hits = [_back_project(stack.face_index[v], stack.vertices_px[v], stack.faces, stack.predictions[v])
            for v in range(n_views)]
    candidate_faces = np.stack([h[0] for h in hits], axis=1)  # (P, N)
    candidate_bary = np.stack([h[1] for h in hits], axis=1)  # (P, N, 3)
    score = np.full(candidate_faces.shape, np.inf)
    for start in range(0, n_views, CANDIDATE_CHUNK):
        part = slice(start, start + CANDIDATE_CHUNK)
        faces_part = np.maximum(candidate_faces[:, part], 0)
        score[:, part] = stack.median_distance(faces_part, candidate_bary[:, part],
                                               np.zeros(faces_part.shape), min_views)
    score[candidate_faces < 0] = np.inf
    rows = np.arange(candidate_faces.shape[0])
    best = score.argmin(axis=1)
    point_faces = np.maximum(candidate_faces[rows, best], 0)
    bary = candidate_bary[rows, best]
    visible = np.isfinite(stack.distances(point_faces, bary, np.zeros(len(rows))))  # (N, P)
    triangles = neighbours(point_faces)  # (P, T)
    bary, offset = _refine(stack, triangles, visible)
    median = stack.median_distance(triangles, bary, offset, min_views)
    choice = median.argmin(axis=1)
    return triangles[rows, choice], bary[rows, choice], offset[rows, choice]


def _refine(stack: _Stack, triangles: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IRLS for the sum of reprojection distances over the views where a point is ``visible
    (N, P)``, per point and candidate triangle ``triangles (P, T)``: unknowns ``x = (b1, b2,
    offset)``, the projection ``a + b1 (b - a) + b2 (c - a) + offset * n`` is linear in them
    (``a, b, c`` the triangle's projected corners, ``n`` the screen motion of its normal).
    Returns ``bary (P, T, 3)`` and ``offset (P, T)`` metres."""
    corners = stack.vertices_px[:, stack.faces[triangles], :2].transpose(1, 2, 0, 3, 4)  # (P, T, N, 3, 2)
    origin = corners[..., 0, :]
    design = np.stack([corners[..., 1, :] - origin, corners[..., 2, :] - origin,
                       stack.normal_px[:, triangles].transpose(1, 2, 0, 3)], axis=-1)  # (P, T, N, 2, 3)
    target = stack.predictions.transpose(1, 0, 2)[:, None] - origin  # (P, T, N, 2)
    # per view, the normal equations' terms: (P, T, N, 9) and (P, T, N, 3)
    gram = np.einsum("...ki,...kj->...ij", design, design).reshape(design.shape[:3] + (9,))
    moment = np.einsum("...ki,...k->...i", design, target)
    use = visible.T[:, None, None, :].astype(np.float64)  # (P, 1, 1, N)
    x = np.zeros(triangles.shape + (3,))
    x[..., :2] = 1.0 / 3.0
    for _ in range(REFINE_ITERATIONS):
        residual = np.linalg.norm((design * x[:, :, None, None, :]).sum(axis=-1) - target, axis=-1)
        weight = use / np.maximum(residual[:, :, None, :], IRLS_FLOOR_PX)  # L1 as reweighted L2
        normal = (weight @ gram).reshape(triangles.shape + (3, 3))
        rhs = (weight @ moment)[:, :, 0]
        x = np.linalg.solve(normal + 1e-9 * np.eye(3), rhs[..., None])[..., 0]
        bary = _on_triangle(np.stack([1 - x[..., 0] - x[..., 1], x[..., 0], x[..., 1]], axis=-1))
        x[..., :2] = bary[..., 1:]
        x[..., 2] = np.clip(x[..., 2], -MAX_OFFSET_M, MAX_OFFSET_M)
    return bary, x[..., 2]


def _triangle_neighbours(faces: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function: ``(P,)`` triangles -> ``(P, T)`` the triangles sharing a vertex with each
    (itself included; rows padded by repeating their first entry)."""
    from scipy import sparse

    incidence = sparse.csr_matrix((np.ones(faces.size), (np.repeat(np.arange(len(faces)), 3), faces.ravel())),
                                  shape=(len(faces), int(faces.max()) + 1))
    adjacency = (incidence @ incidence.T).tocsr()

    def neighbours(triangles: np.ndarray) -> np.ndarray:
        rings = [adjacency.indices[adjacency.indptr[t]:adjacency.indptr[t + 1]] for t in triangles]
        width = max(len(ring) for ring in rings)
        return np.stack([np.concatenate([ring, np.full(width - len(ring), ring[0])]) for ring in rings])

    return neighbours


def calibrate(scene, model_sha256: str, n_identities: int = N_IDENTITIES, seed: int = 0,
              progress: Callable[[str, int, int], None] | None = None) -> DenseEmbedding:
    """Self-calibrate the dense embedding of ``scene``'s model (steps in the module docstring).

    Args:
        scene: a :class:`flamefit.fitting.scene.HeadScene` on the CPU with its albedo model.
        model_sha256: recorded in the result (the cache key).
        n_identities: identities rendered (each at 7 yaws).
        progress: called with (phase, done, total).
    """
    views = calibration_views(scene, n_identities, seed=seed,
                              progress=None if progress is None else lambda d, t: progress("render", d, t))
    return embedding_from_views(scene, views, detect_views(views, progress), model_sha256)


def embedding_from_views(scene, views: list[CalibrationView], predictions: np.ndarray,
                         model_sha256: str) -> DenseEmbedding:
    """Steps 3-4 of the module docstring on rendered ``views`` and the network's
    ``predictions (N, 478, 2)`` on them (screen pixels)."""
    faces = scene.flame.faces.cpu().numpy().astype(np.int64)
    with torch.no_grad():
        neutral = scene.flame(shape=torch.zeros(1, scene.flame.n_shape),
                              expression=torch.zeros(1, scene.flame.n_expression),
                              pose=torch.zeros(1, scene.flame.n_joints * 3))
    template = neutral.vertices[0].numpy()
    ibug_template = neutral.landmarks_3d[0].numpy()  # the model's own 68 points, neutral

    stack = _Stack.of(views, predictions, faces)
    point_faces, point_bary, offset = place_points(stack, _triangle_neighbours(faces))
    median_spread = stack.median_distance(point_faces, point_bary, offset,
                                          int(np.ceil(MIN_VISIBLE_FRACTION * len(views))))
    median_spread = np.where(np.isfinite(median_spread), median_spread * (REPORT_SIZE / RENDER_SIZE), np.nan)
    # on the neutral template (the offset left out): regions and the 478 -> 68 neighbours
    on_template = np.einsum("nk,nkc->nc", point_bary, template[faces[point_faces]])
    on_template[~np.isfinite(median_spread)] = np.nan
    regions = _regions(on_template, ibug_template)
    kept = _kept(median_spread, regions)
    crop_scale = np.array([REPORT_SIZE / np.ptp(crop_box(view.landmarks_px - 0.5)[[0, 2]])
                           for view in views])
    return DenseEmbedding(
        point_ids=kept, faces=point_faces[kept], bary=point_bary[kept].astype(np.float32),
        offset=offset[kept].astype(np.float32), regions=regions[kept],
        spread_px=median_spread, to_68=_fit_to_68(views, predictions, on_template, ibug_template),
        model_sha256=model_sha256, n_views=len(views),
        fit_crop_factor=float(np.median(crop_scale) * RENDER_SIZE / REPORT_SIZE))


def _kept(spread: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """``(K,)`` sorted indices of the points to fit: spread (``(478,)``, NaN: never visible) at
    most :data:`MAX_SPREAD_PX`, and each region's best :data:`MIN_REGION_POINTS` within
    :data:`REGION_MAX_SPREAD_PX`."""
    spread = np.where(np.isfinite(spread), spread, np.inf)
    keep = spread <= MAX_SPREAD_PX
    for code in range(len(REGIONS)):
        members = np.flatnonzero((regions == code) & (spread <= REGION_MAX_SPREAD_PX))
        keep[members[np.argsort(spread[members], kind="stable")[:MIN_REGION_POINTS]]] = True
    return np.flatnonzero(keep)


def detect_views(views: list[CalibrationView], progress: Callable[[str, int, int], None] | None = None
                 ) -> np.ndarray:
    """``(N, 478, 2)`` the network's points on every view (screen pixels)."""
    predictions = []
    for i, view in enumerate(views):
        predictions.append(_detect_in_view(view))
        if progress:
            progress("detect", i + 1, len(views))
    return np.stack(predictions)


def spread_on_views(embedding: DenseEmbedding, views: list[CalibrationView], predictions: np.ndarray,
                    faces: np.ndarray) -> np.ndarray:
    """``(K,)`` median reprojection spread (px of a 224² render) of the embedding's kept points
    over other views (e.g. held-out identities, :func:`calibration_views` with another seed):
    the same measure as :attr:`DenseEmbedding.spread_px`, NaN where never visible."""
    stack = _Stack.of(views, predictions[:, embedding.point_ids], faces)
    median = stack.median_distance(embedding.faces, embedding.bary.astype(np.float64),
                                   embedding.offset.astype(np.float64))
    return np.where(np.isfinite(median), median * (REPORT_SIZE / RENDER_SIZE), np.nan)


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
        "(once per model file, under a minute on a CPU)")
    import copy

    on_cpu = scene if next(scene.buffers()).device.type == "cpu" else copy.deepcopy(scene).cpu()
    embedding = calibrate(on_cpu, sha256)
    embedding.save(cache_path(sha256))
    return embedding

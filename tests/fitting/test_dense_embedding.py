"""The self-calibrated MediaPipe embedding: the shipped one, the cache, the back-projection, the
placement of the points (a synthetic case with a known answer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flamefit.fitting import dense_embedding as de
from flamefit.fitting import mediapipe_detect as mp
from flamefit.flame.selection import select_model


@pytest.fixture(scope="module")
def open_files():
    return select_model(open_model=True)


def test_shipped_embedding_is_the_open_models(open_files):
    embedding = de.DenseEmbedding.load(de.SHIPPED_EMBEDDING)
    assert embedding is not None
    assert embedding.model_sha256 == de.model_sha256(open_files.model)
    kept = embedding.spread_px[embedding.point_ids]
    assert np.all(kept <= de.REGION_MAX_SPREAD_PX)
    assert np.sum(kept > de.MAX_SPREAD_PX) <= de.MIN_REGION_POINTS * len(de.REGIONS)
    assert len(embedding.point_ids) > 140  # the inner face; the outline is dropped
    summary = embedding.summary()
    assert summary["median_spread_px_224_render"] <= 1.0  # the bar (held out: the benchmark)
    # every fitting region has points, the irises included (they move the eye pose)
    assert all(summary["per_region"][name] >= min(de.MIN_REGION_POINTS, 10) for name in de.REGIONS)
    assert set(np.flatnonzero(embedding.regions == de.REGIONS.index("irises"))) == set(
        np.flatnonzero(embedding.point_ids >= mp.N_MESH))
    # the outline slides with yaw and is left to the 68-point term: its points are dropped
    outline_spread = np.nanmedian(embedding.spread_px[[10, 152, 234, 454]])
    assert outline_spread > de.MAX_SPREAD_PX
    # barycentrics and the 478 -> 68 conversion
    assert np.allclose(embedding.bary.sum(axis=1), 1, atol=1e-5)
    assert np.all(np.abs(embedding.offset) <= de.MAX_OFFSET_M)
    assert np.allclose(embedding.to_68.sum(axis=1), 1, atol=1e-9)
    assert embedding.to_68.shape == (68, 478)


def test_conversion_is_affine_invariant():
    embedding = de.DenseEmbedding.load(de.SHIPPED_EMBEDDING)
    dense = np.random.default_rng(0).normal(size=(478, 2)) * 30 + 100
    moved = dense @ np.array([[0.8, -0.6], [0.6, 0.8]]).T * 1.7 + [5, -3]
    expected = embedding.convert_to_68(dense) @ np.array([[0.8, -0.6], [0.6, 0.8]]).T * 1.7 + [5, -3]
    assert np.allclose(embedding.convert_to_68(moved), expected)
    assert np.allclose(mp.ibug68_from_dense(dense), embedding.convert_to_68(dense))


def test_other_models_are_calibrated_once_and_cached(tmp_path, monkeypatch, open_files):
    monkeypatch.setenv("FLAMEFIT_CACHE", str(tmp_path))
    model = tmp_path / "my_model.pkl"
    model.write_bytes(b"not the open model")
    shipped = de.DenseEmbedding.load(de.SHIPPED_EMBEDDING)
    calls = []

    def fake_calibrate(scene, sha256, **_):
        calls.append(sha256)
        return de.DenseEmbedding(**{**shipped.__dict__, "model_sha256": sha256})

    monkeypatch.setattr(de, "calibrate", fake_calibrate)

    class Scene(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("x", torch.zeros(1))

    messages = []
    first = de.dense_embedding_for(Scene(), model, log=messages.append)
    second = de.dense_embedding_for(Scene(), model, log=messages.append)
    assert len(calls) == 1 and first.model_sha256 == second.model_sha256 == de.model_sha256(model)
    assert "calibrating" in messages[0] and len(messages) == 1
    assert de.cache_path(de.model_sha256(model)).is_file()
    # the shipped model needs no calibration
    de.dense_embedding_for(Scene(), open_files.model, log=messages.append)
    assert len(calls) == 1


def test_back_projection_finds_the_triangle_and_barycentrics():
    vertices_px = np.array([[10.0, 10.0, 0.0], [50.0, 10.0, 0.0], [10.0, 50.0, 0.0]])
    faces = np.array([[0, 1, 2]])
    face_index = np.full((de.RENDER_SIZE, de.RENDER_SIZE), -1)
    face_index[10:30, 10:30] = 0
    view = de.CalibrationView(np.zeros((1, 1, 3), np.uint8), vertices_px, np.zeros((68, 2)), face_index,
                              np.zeros((1, 2)), 0.0)
    triangles, bary = de._back_project(view.face_index, view.vertices_px, faces,
                                       np.array([[20.0, 20.0], [200.0, 200.0]]))
    assert triangles.tolist() == [0, -1]
    assert np.allclose(bary[0], [0.5, 0.25, 0.25])
    assert np.allclose(bary[0] @ vertices_px[:, :2], [20, 20])


def test_embedded_points_move_along_the_triangle_normal():
    vertices = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]]).repeat(2, 1, 1)
    vertices[1] *= 2  # a bigger triangle: same normal, same offset in metres
    faces = torch.tensor([[0, 1, 2]])
    points = de.embedded_points(vertices, faces, torch.tensor([0, 0]), torch.tensor([[1 / 3] * 3, [1.0, 0, 0]]),
                                torch.tensor([0.01, -0.02]))
    assert torch.allclose(points[0], torch.tensor([[1 / 3, 1 / 3, 0.01], [0, 0, -0.02]]))
    assert torch.allclose(points[1], torch.tensor([[2 / 3, 2 / 3, 0.01], [0, 0, -0.02]]))


def _synthetic_stack(truth_faces, truth_bary, truth_offset, seed=0):
    """A bumpy 8x8-vertex sheet (5 cm, model space) seen by an orthographic camera (2000 px/m)
    at yaws -40..40 and two pitches; predictions = the true points' projections + 0.3 px noise,
    and one view in five of each point 8 px off (the network's wild guesses)."""
    from flamefit.renderer.rasterize import rasterize

    grid = np.linspace(-0.025, 0.025, 8)
    x, y = np.meshgrid(grid, grid)
    bumps = 0.006 * np.cos(60 * x.ravel()) * np.cos(60 * y.ravel())
    template = np.stack([x.ravel(), y.ravel(), bumps], axis=1)
    quads = np.array([[r * 8 + c, r * 8 + c + 1, (r + 1) * 8 + c, (r + 1) * 8 + c + 1]
                      for r in range(7) for c in range(7)])
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [1, 3, 2]]])  # counter-clockwise: +z normals
    rng = np.random.default_rng(seed)
    views, predictions = [], []
    for yaw in (-40, -20, -8, 0, 8, 20, 40):
        for pitch in (-0.1, 0.1):
            rotation = _rotation(np.deg2rad(yaw), pitch)
            posed = template @ rotation.T
            scale = 2000.0
            screen = np.stack([224 + scale * posed[:, 0], 224 - scale * posed[:, 1], -scale * posed[:, 2]], axis=1)
            fragments = rasterize(torch.tensor(screen, dtype=torch.float32)[None], torch.tensor(faces),
                                  (de.RENDER_SIZE, de.RENDER_SIZE))
            corners = posed[faces]
            normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            normals /= np.linalg.norm(normals, axis=1, keepdims=True)
            normal_px = np.stack([scale * normals[:, 0], -scale * normals[:, 1]], axis=1)
            truth = (np.einsum("pk,pkc->pc", truth_bary, screen[faces[truth_faces], :2])
                     + truth_offset[:, None] * normal_px[truth_faces])
            noisy = truth + rng.normal(scale=0.3, size=truth.shape)
            wild = rng.random(len(truth)) < 0.2
            noisy[wild] += 8.0 * rng.choice([-1, 1], size=(wild.sum(), 2))
            views.append(de.CalibrationView(np.zeros((1, 1, 3), np.uint8), screen, np.zeros((68, 2)),
                                            fragments.face_index[0].numpy(), normal_px, float(yaw)))
            predictions.append(noisy)
    return de._Stack.of(views, np.stack(predictions), faces), template, faces


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    about_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    about_x = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    return about_y @ about_x


def test_placement_beats_the_median_back_projection_and_finds_the_offset():
    truth_faces = np.array([30, 45, 60, 71])
    truth_bary = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [1 / 3, 1 / 3, 1 / 3], [0.1, 0.1, 0.8]])
    truth_offset = np.array([0.0, 0.003, -0.004, 0.002])  # metres: MediaPipe's points need not lie on the skin
    stack, template, faces = _synthetic_stack(truth_faces, truth_bary, truth_offset)
    point_faces, bary, offset = de.place_points(stack, de._triangle_neighbours(faces))
    placed = stack.median_distance(point_faces, bary, offset)
    # the previous recipe: the median of the back-projections carried to the template, on the
    # surface (the sheet's nearest point below it), no offset
    hits = [de._back_project(stack.face_index[v], stack.vertices_px[v], faces, stack.predictions[v])
            for v in range(len(stack.predictions))]
    votes = np.stack([np.einsum("pk,pkc->pc", bary_v, template[faces[faces_v]]) for faces_v, bary_v in hits])
    median = np.median(votes, axis=0)
    flat = template[faces][:, :, :2]  # the sheet seen from above: find the triangle under each
    median_faces, median_bary = [], []
    for point in median[:, :2]:
        inside = de._barycentric_2d(flat, np.repeat(point[None], len(faces), axis=0))
        nearest = int(np.argmin(np.linalg.norm(np.einsum("fk,fkc->fc", inside, flat) - point, axis=1)))
        median_faces.append(nearest)
        median_bary.append(inside[nearest])
    baseline = stack.median_distance(np.array(median_faces), np.array(median_bary), np.zeros(len(median)))
    assert np.all(placed <= baseline + 0.05)  # the L1 optimum, not quite the median's, on the skin
    assert np.median(placed) < 0.6 and np.median(baseline) > 1.0  # the offset points cannot sit on the skin
    assert np.allclose(offset, truth_offset, atol=5e-4)
    found = np.einsum("pk,pkc->pc", bary, template[faces[point_faces]])
    expected = np.einsum("pk,pkc->pc", truth_bary, template[faces[truth_faces]])
    assert np.linalg.norm(found - expected, axis=1).max() < 1e-3  # within a millimetre

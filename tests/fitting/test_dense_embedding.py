"""The self-calibrated MediaPipe embedding: the shipped one, the cache, the back-projection."""

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
    assert np.all(kept <= de.MAX_SPREAD_PX)
    assert len(embedding.point_ids) > 150  # most of the inner face; the outline is dropped
    summary = embedding.summary()
    assert summary["median_spread_px_224_render"] <= de.MAX_SPREAD_PX
    # every fitting region has points, the irises included (they move the eye pose)
    assert all(summary["per_region"][name] > 0 for name in de.REGIONS)
    assert set(np.flatnonzero(embedding.regions == de.REGIONS.index("irises"))) == set(
        np.flatnonzero(embedding.point_ids >= mp.N_MESH))
    # the outline slides with yaw and is left to the 68-point term: its points are dropped
    outline_spread = np.nanmedian(embedding.spread_px[[10, 152, 234, 454]])
    assert outline_spread > de.MAX_SPREAD_PX
    # barycentrics and the 478 -> 68 conversion
    assert np.allclose(embedding.bary.sum(axis=1), 1, atol=1e-5)
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
    view = de.CalibrationView(np.zeros((1, 1, 3), np.uint8), vertices_px, np.zeros((68, 2)), face_index, 0.0)
    triangles, bary = de._back_project(view, faces, np.array([[20.0, 20.0], [200.0, 200.0]]))
    assert triangles.tolist() == [0, -1]
    assert np.allclose(bary[0], [0.5, 0.25, 0.25])
    assert np.allclose(bary[0] @ vertices_px[:, :2], [20, 20])


def test_closest_surface_points():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    points, triangles = de.closest_surface_points(vertices, faces, np.array([[0.2, 0.2, 0.5], [0.9, 0.9, -1]]))
    assert np.allclose(points, [[0.2, 0.2, 0], [0.9, 0.9, 0]])
    assert triangles.tolist() == [0, 1]

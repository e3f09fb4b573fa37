"""Simple generated meshes for tests, benchmarks and demos (model space, y up, +z to viewer)."""

from __future__ import annotations

import math

import torch

__all__ = ["uv_sphere", "head_like_mesh"]


def uv_sphere(
    n_lat: int = 16, n_lon: int = 32, radius: float = 1.0, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A latitude/longitude sphere with an OBJ-style UV atlas (one seam at longitude 0).

    Args:
        n_lat: rings from pole to pole (>= 3). n_lon: segments around (>= 3).
        radius: in model units.

    Returns:
        ``vertices (V, 3)``, ``faces (F, 3)`` int64 with outward, counter-clockwise corners,
        ``vt (T, 2)`` and ``ft (F, 3)`` (``u`` = longitude / 2 pi, ``v`` = 1 at the north pole
        (+y)), with ``F = 2 * n_lon * (n_lat - 1)``.
    """
    if n_lat < 3 or n_lon < 3:
        raise ValueError("uv_sphere needs n_lat >= 3 and n_lon >= 3")
    theta = torch.linspace(0.0, math.pi, n_lat + 1, dtype=torch.float64)  # from +y (north)
    phi = torch.arange(n_lon + 1, dtype=torch.float64) * (2 * math.pi / n_lon)
    t, p = torch.meshgrid(theta, phi, indexing="ij")  # (n_lat + 1, n_lon + 1)
    # Longitude 0 faces the viewer (+z); x = sin(theta) sin(phi) keeps faces counter-clockwise.
    grid = torch.stack([t.sin() * p.sin(), t.cos(), t.sin() * p.cos()], dim=-1) * radius
    uv_grid = torch.stack([p / (2 * math.pi), 1.0 - t / math.pi], dim=-1)

    # Unique positions: poles once, ring vertices once per longitude (column n_lon == column 0).
    ring = grid[1:-1, :n_lon].reshape(-1, 3)
    vertices = torch.cat([grid[:1, 0], ring, grid[-1:, 0]], dim=0)
    north, south = 0, vertices.shape[0] - 1

    def vertex_id(i, j):  # ring i in 1..n_lat-1, column j in 0..n_lon
        return 1 + (i - 1) * n_lon + (j % n_lon)

    vt = uv_grid.reshape(-1, 2)

    def uv_id(i, j):
        return i * (n_lon + 1) + j

    faces, ft = [], []
    for i in range(n_lat):
        for j in range(n_lon):
            corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
            tris = [(0, 1, 2), (0, 2, 3)]
            if i == 0:
                tris = [(0, 1, 2)]
            elif i == n_lat - 1:
                tris = [(0, 1, 3)]
            for a, b, c in tris:
                tri = [corners[a], corners[b], corners[c]]
                ids = [north if r == 0 else south if r == n_lat else vertex_id(r, col) for r, col in tri]
                faces.append(ids)
                ft.append([uv_id(r, col) for r, col in tri])
    return (
        vertices.to(dtype),
        torch.tensor(faces, dtype=torch.long),
        vt.to(dtype),
        torch.tensor(ft, dtype=torch.long),
    )


def head_like_mesh(n_faces: int = 10000, dtype=torch.float32):
    """An ellipsoid with a nose, brow and chin bumps, about the size of a head (metres).

    Used when the project's demo head is not available. Roughly ``n_faces`` triangles.

    Returns:
        ``vertices (V, 3)``, ``faces (F, 3)``, ``vt (T, 2)``, ``ft (F, 3)`` as :func:`uv_sphere`.
    """
    n_lon = max(8, int(round(math.sqrt(n_faces))))
    n_lat = max(4, int(round(n_faces / (2 * n_lon))) + 1)
    vertices, faces, vt, ft = uv_sphere(n_lat, n_lon, 1.0, torch.float64)
    x, y, z = vertices.unbind(-1)
    bumps = (
        0.25 * torch.exp(-((x / 0.12) ** 2 + ((y + 0.05) / 0.25) ** 2)) * (z > 0)  # nose
        + 0.08 * torch.exp(-((y - 0.3) / 0.08) ** 2) * (z > 0.5)  # brow
        + 0.06 * torch.exp(-((x / 0.3) ** 2 + ((y + 0.75) / 0.12) ** 2)) * (z > 0)  # chin
    )
    scaled = torch.stack([x * 0.075, y * 0.11, z * 0.095 * (1.0 + bumps)], dim=-1)
    return scaled.to(dtype), faces, vt.to(dtype), ft

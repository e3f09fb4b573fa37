"""Hard triangle rasterisation in plain, vectorised PyTorch (CPU and CUDA, same code).

Conventions
-----------
* **Screen space**: ``vertices_screen[..., 0:2]`` are pixels, origin at the top-left corner of the
  image, x to the right, y down; the centre of pixel ``(row i, column j)`` is
  ``(j + 0.5, i + 0.5)``. A pixel is covered by a triangle when its centre lies inside the
  triangle or on its boundary (boundaries are inclusive on every edge).
* **Depth**: ``vertices_screen[..., 2]``; *smaller is nearer to the camera*. With
  ``perspective_correct=False`` (orthographic cameras) any sign is allowed and depth is
  interpolated affinely in screen space. With ``perspective_correct=True`` the third coordinate
  must be the camera-space depth ``z_cam`` (what :meth:`flamefit.renderer.cameras.PerspectiveCamera.project`
  returns); a triangle with any corner at ``z_cam <= near`` is *behind the camera* and is
  dropped whole (no near-plane clipping), and barycentrics and depth are perspective-correct.
* **Orientation**: a triangle is front-facing when its corners appear counter-clockwise to the
  viewer, i.e. its signed area
  ``(x2 - x0) * (y1 - y0) - (x1 - x0) * (y2 - y0)`` is positive in the y-down screen frame. This
  is the OBJ/FLAME convention (outward normals, counter-clockwise corners) after any of our
  cameras. ``cull_backfaces=True`` drops triangles with negative area.
* Triangles with zero area, a non-finite corner, or no pixel centre inside the image produce
  nothing. Sub-pixel triangles cover the pixel centres they contain (possibly none).
* Ties: where two triangles reach a pixel centre at exactly the same depth the one with the
  lower face index wins.

Algorithm
---------
1. *Triangle setup* (no gradient), one vectorised pass over all (batch element, triangle)
   pairs, on contiguous per-coordinate rows ``(3 coordinates, 3 corners, B * F)``, in the
   input's precision (float64 or float32): the bounding box clipped to the image, and the three
   edge functions and the depth plane as affine functions of the pixel offset from the box's
   first pixel centre (so precision does not depend on where the triangle lies on the screen),
   stored in float32.
2. *Visibility* (no gradient): every box is covered by ``4 x 4`` pixel tiles anchored at its
   first pixel; the (triangle, tile) pairs are enumerated exactly (``repeat_interleave`` over
   the tile counts) and all 16 pixel centres of all tiles are tested at once with a single
   matrix product ``(tiles * 4, 3) @ (3, 16)`` that gives the three edge functions and the
   depth. The nearest covering triangle per pixel is found with one ``scatter_reduce(amin)`` of
   a packed int64 key ``(order-preserving int32 of the float32 depth) << 32 | face index`` into
   a depth buffer padded by 3 pixels on the right and bottom, so tiles that overhang the image
   need no bounds test. The tile pairs are processed in chunks of whole triangles holding at
   most ``max_pairs_per_chunk`` candidate pixels (a single triangle larger than that is one
   chunk on its own), so memory stays bounded however large the triangles or the batch are.
3. *Barycentrics* (differentiable): one table of per-face coefficients ``(B * F, 9)`` (corner
   0, the gradients of barycentrics 1 and 2 with respect to the pixel position, and the depth
   values) is computed from the vertex positions, gathered at the covered pixels with
   ``index_select`` (whose backward is an ``index_add``) and evaluated there, so gradients reach
   ``vertices_screen`` through ``bary`` and ``depth``. Visibility itself (which triangle wins) is
   not differentiated.

Visibility is always resolved in float32 (the input may be float64); barycentrics and depth are
returned in the input's dtype.
"""

from __future__ import annotations

import torch

from flamefit.renderer.choices import BACKENDS
from flamefit.renderer.fragments import Fragments
from flamefit.renderer.interpolate import scatter_channels
from flamefit.renderer.triangles import drawable_triangles, gather_corners

__all__ = ["rasterize", "rasterize_visibility", "fragments_from_face_index", "BACKENDS"]

_NO_HIT = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


def rasterize(
    vertices_screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    cull_backfaces: bool = False,
    perspective_correct: bool = False,
    near: float = 1e-6,
    backend: str = "torch",
    max_pairs_per_chunk: int = 1 << 22,
) -> Fragments:
    """Rasterise a batch of triangle meshes that share one face list.

    Args:
        vertices_screen: ``(B, V, 3)`` float32/float64, screen space ``(x px, y px, depth)``
            as returned by a camera's ``project`` (see the module docstring).
        faces: ``(F, 3)`` int64 (any integer dtype is accepted) vertex indices.
        image_size: ``(H, W)`` in pixels.
        cull_backfaces: drop triangles whose corners appear clockwise to the viewer.
        perspective_correct: treat the third coordinate as camera depth ``z_cam`` (perspective
            camera): drop triangles with a corner at ``z_cam <= near`` and interpolate
            perspective-correctly. False for orthographic cameras.
        near: depth of the near plane (model units) used when ``perspective_correct``.
        backend: ``"torch"`` (this module), ``"nvdiffrast"`` (visibility by nvdiffrast on CUDA,
            see :mod:`flamefit.renderer.nvdiffrast_backend`) or ``"auto"`` (nvdiffrast when it is
            installed and the tensors are on CUDA, torch otherwise). All give the same
            :class:`Fragments`, with barycentrics computed by the same differentiable code.
        max_pairs_per_chunk: bound on the (pixel, triangle) candidate pairs held at once in
            the torch visibility pass.

    Returns:
        :class:`flamefit.renderer.fragments.Fragments` with ``face_index (B, H, W)``,
        ``bary (B, H, W, 3)``, ``depth (B, H, W)`` and ``mask (B, H, W)``.
    """
    vertices_screen, faces, image_size = _check_inputs(vertices_screen, faces, image_size)
    chosen = _choose_backend(backend, vertices_screen)
    if chosen == "nvdiffrast":
        from flamefit.renderer.nvdiffrast_backend import rasterize_visibility_nvdiffrast

        face_index = rasterize_visibility_nvdiffrast(
            vertices_screen, faces, image_size, cull_backfaces, perspective_correct, near
        )
    else:
        face_index = rasterize_visibility(
            vertices_screen, faces, image_size, cull_backfaces, perspective_correct, near,
            max_pairs_per_chunk,
        )
    return fragments_from_face_index(vertices_screen, faces, face_index, perspective_correct)


def _check_inputs(
    vertices_screen: torch.Tensor, faces: torch.Tensor, image_size
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    if not isinstance(vertices_screen, torch.Tensor) or vertices_screen.dim() != 3 or (
        vertices_screen.shape[-1] != 3
    ):
        shape = tuple(getattr(vertices_screen, "shape", ()))
        raise ValueError(f"vertices_screen must be a (B, V, 3) tensor, got shape {shape}")
    if not vertices_screen.is_floating_point():
        raise ValueError(f"vertices_screen must be floating point, got {vertices_screen.dtype}")
    if not isinstance(faces, torch.Tensor) or faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be an (F, 3) integer tensor, got {getattr(faces, 'shape', None)}")
    faces = faces.to(device=vertices_screen.device, dtype=torch.long)
    height, width = (int(image_size[0]), int(image_size[1]))
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (H, W), got {image_size}")
    if faces.numel():
        lowest, highest = torch.stack(torch.aminmax(faces)).tolist()  # one host read
        if lowest < 0 or highest >= vertices_screen.shape[1]:
            raise ValueError(
                f"faces index vertices outside [0, {vertices_screen.shape[1]}): min {lowest}, max {highest}"
            )
    return vertices_screen, faces, (height, width)


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """The rasteriser that ``backend`` means for tensors on ``device``: ``"torch"`` or
    ``"nvdiffrast"``. ``"auto"`` is nvdiffrast when it is installed and loads on that CUDA
    device, torch otherwise; an explicit ``"nvdiffrast"`` raises
    :class:`flamefit.renderer.nvdiffrast_backend.NvdiffrastUnavailable` when it cannot run there."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    from flamefit.renderer.nvdiffrast_backend import nvdiffrast_available, require_nvdiffrast

    device = torch.device(device)
    if backend == "nvdiffrast":
        require_nvdiffrast(device)
        return "nvdiffrast"
    return "nvdiffrast" if device.type == "cuda" and nvdiffrast_available(device) else "torch"


def _choose_backend(backend: str, vertices_screen: torch.Tensor) -> str:
    return resolve_backend(backend, vertices_screen.device)


_TILE = 4  # visibility tiles are _TILE x _TILE pixels
_TILE_LOG2 = 2
_TILE_PIXELS = _TILE * _TILE
_PAD = _TILE - 1  # a tile anchored inside the image overhangs it by at most this many pixels


def _triangle_setup(
    corners: torch.Tensor,
    image_size: tuple[int, int],
    cull_backfaces: bool,
    perspective_correct: bool,
    near: float,
):
    """Per-triangle clipped boxes, tile counts and local edge/depth planes, in one pass.

    Args:
        corners: ``(3, 3, T)`` screen-space corners from :func:`gather_corners`. The setup
            runs in float64 for float64 input and in float32 otherwise (all quantities are
            differences of nearby coordinates, local to the box, so float32 loses nothing
            that float32 input had).

    Returns:
        ``(x0, y0, tiles_w, tiles_h, planes)``: int64 ``(T,)`` first pixel (column, row) of the
        clipped box and its size in ``_TILE``-pixel tiles (0 where the triangle produces
        nothing); ``planes (12, T)`` float32 holding, for w0, w1, w2 and the depth key,
        ``(value at the box's first pixel centre, d/dx, d/dy)``. Edge functions are
        sign-normalised so that "inside" means all >= 0. Triangles that
        :func:`flamefit.renderer.triangles.drawable_triangles` rejects get no tiles.
    """
    height, width = image_size
    c = corners.to(torch.float64 if corners.dtype == torch.float64 else torch.float32)
    xy, z = c[:2], c[2]  # (2, 3, T) and (3, T)
    valid, area = drawable_triangles(c, cull_backfaces, perspective_correct, near)

    # Clipped box: first and last pixel (column, row) whose centre lies in the bounding box.
    big = float(max(height, width) + 2)
    first = torch.ceil(xy.amin(1).clamp(-big, big) - 0.5).clamp(min=0)  # (2, T)
    last = torch.floor(xy.amax(1).clamp(-big, big) - 0.5)
    last[0].clamp_(max=width - 1)
    last[1].clamp_(max=height - 1)
    span = last - first  # box size - 1, negative when empty
    nonempty = valid & (span[0] >= 0) & (span[1] >= 0)
    tiles = torch.where(nonempty, torch.floor(span / _TILE) + 1, 0.0).long()  # (2, T)

    # Edge k (opposite corner k) runs from corner a = k+1 to b = k+2; at point p its value is
    # (p.x - a.x)(b.y - a.y) - (p.y - a.y)(b.x - a.x), and w_k / area is corner k's barycentric.
    start = xy.roll(-1, dims=1)  # (2, 3, T) corner a = k + 1 of each edge k
    direction = xy.roll(-2, dims=1) - start  # b - a
    sign = torch.where(area < 0, -1.0, 1.0)
    slope = torch.stack([direction[1], -direction[0]]) * sign  # (2, 3, T): d w_k / dx, d w_k / dy
    offset = (first + 0.5)[:, None] - start  # box's first pixel centre relative to corner a
    at_origin = offset[0] * slope[0] + offset[1] * slope[1]  # (3, T)
    edges = torch.cat([at_origin[None], slope])  # (3 coefficients, 3 edges, T)

    # Depth key = sum_k w_k * values_k / area, affine in screen space. Orthographic: the depth;
    # perspective: minus the inverse depth (1 / z_cam is affine in screen space).
    values = z if not perspective_correct else -1.0 / torch.where(valid, z, 1.0)
    weighted = values / torch.where(valid, area * sign, 1.0)  # |area|: the signs of w cancel
    depth = (edges * weighted).sum(dim=1)  # (3 coefficients, T)
    planes = torch.cat([edges.transpose(0, 1).reshape(9, -1), depth]).to(torch.float32)
    return first[0].long(), first[1].long(), tiles[0], tiles[1], planes


def _orderable_int64(depth: torch.Tensor) -> torch.Tensor:
    """Map float32 values to int64 with the same order (monotonic increasing)."""
    bits = depth.contiguous().view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # negative floats: reverse their order
    return bits.to(torch.int64)


@torch.no_grad()
def rasterize_visibility(
    vertices_screen: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    cull_backfaces: bool = False,
    perspective_correct: bool = False,
    near: float = 1e-6,
    max_pairs_per_chunk: int = 1 << 22,
) -> torch.Tensor:
    """Non-differentiable visibility pass: the nearest covering triangle of every pixel.

    Args:
        vertices_screen: ``(B, V, 3)`` screen space ``(x px, y px, depth)``.
        faces: ``(F, 3)`` int64.
        image_size: ``(H, W)``.
        cull_backfaces, perspective_correct, near, max_pairs_per_chunk: as in :func:`rasterize`.

    Returns:
        ``(B, H, W)`` int64 face index, ``-1`` where no triangle covers the pixel centre.
    """
    height, width = image_size
    batch = vertices_screen.shape[0]
    n_faces = faces.shape[0]
    device = vertices_screen.device
    if n_faces == 0 or batch == 0:
        return torch.full((batch, height, width), -1, dtype=torch.long, device=device)

    x0, y0, tiles_w, tiles_h, planes = _triangle_setup(
        gather_corners(vertices_screen.detach(), faces), image_size, cull_backfaces, perspective_correct, near
    )
    padded_h, padded_w = height + _PAD, width + _PAD
    image_start = torch.arange(0, batch * padded_h * padded_w, padded_h * padded_w, device=device)
    base = (image_start[:, None] + (y0 * padded_w + x0).view(batch, n_faces)).view(-1)  # box origin
    face_id = torch.arange(n_faces, device=device).repeat(batch)

    best = torch.full((batch * padded_h * padded_w,), _NO_HIT, dtype=torch.int64, device=device)
    tile_counts = tiles_w * tiles_h
    for lo, hi, n_tiles in _chunks_of_triangles(tile_counts, max(1, max_pairs_per_chunk // _TILE_PIXELS)):
        _visibility_tiles(
            best, slice(lo, hi), n_tiles, tile_counts, tiles_w, base, face_id, planes, padded_w
        )
    best = best.view(batch, padded_h, padded_w)[:, :height, :width]
    return torch.where(best == _NO_HIT, -1, best & _LOW32)


def _chunks_of_triangles(tile_counts: torch.Tensor, max_tiles: int):
    """Yield ``(lo, hi, n_tiles)``: consecutive triangle ranges holding at most ``max_tiles``
    tiles each (or one triangle that alone holds more)."""
    ends = torch.cumsum(tile_counts, 0).cpu()  # one host read plans every chunk
    total = int(ends[-1])
    if total == 0:
        return
    if total <= max_tiles:
        yield 0, tile_counts.numel(), total
        return
    lo, done = 0, 0
    while done < total:
        hi = int(torch.searchsorted(ends, torch.tensor(done + max_tiles), right=True))
        hi = max(hi, lo + 1)
        end = int(ends[hi - 1])
        if end > done:
            yield lo, hi, end - done
        lo, done = hi, end


def _tiles_of(triangles: slice, n_tiles: int, tile_counts: torch.Tensor, tiles_w: torch.Tensor):
    """Enumerate the tiles of a range of triangles.

    Returns:
        ``(owner, tile_col, tile_row)``, each ``(n_tiles,)`` int64: the triangle of each tile
        and the tile's position in that triangle's box (in tiles).
    """
    device = tile_counts.device
    counts = tile_counts[triangles]
    owner = torch.repeat_interleave(
        torch.arange(triangles.start, triangles.stop, device=device), counts, output_size=n_tiles
    )
    start_of_owner = (torch.cumsum(counts, 0) - counts).index_select(0, owner - triangles.start)
    local = torch.arange(n_tiles, device=device) - start_of_owner  # tile number within its box
    width_of = tiles_w.index_select(0, owner)
    # Exact floor division of small non-negative integers in float64 (int64 division is slow).
    tile_row = torch.floor((local.to(torch.float64) + 0.5) / width_of.to(torch.float64)).long()
    return owner, local - tile_row * width_of, tile_row


def _visibility_tiles(best, triangles, n_tiles, tile_counts, tiles_w, base, face_id, planes, padded_w) -> None:
    """Test the 16 pixels of every tile of ``triangles`` (a slice) and fold the hits into ``best``.

    Args:
        best: ``(B * (H + 3) * (W + 3),)`` int64 packed ``depth << 32 | face`` per padded pixel.
        n_tiles: total number of tiles of these triangles.
        tile_counts, tiles_w, base, face_id: ``(T,)`` int64 per triangle.
        planes: ``(12, T)`` float32 from :func:`_triangle_setup`.
    """
    device = best.device
    owner, tile_col, tile_row = _tiles_of(triangles, n_tiles, tile_counts, tiles_w)
    origin, slope_x, slope_y = planes.index_select(1, owner).view(4, 3, n_tiles).unbind(1)  # (4, n) each
    shift_x = (tile_col << _TILE_LOG2).to(torch.float32)
    shift_y = (tile_row << _TILE_LOG2).to(torch.float32)
    at_tile = origin + slope_x * shift_x + slope_y * shift_y  # w0, w1, w2, depth at each tile's first pixel
    # Affine functions are separable: value(row r, column c) = (at_tile + dy r) + dx c. The tile
    # index stays the innermost (contiguous) dimension so every op is a long vectorised loop.
    lane = torch.arange(_TILE, device=device, dtype=torch.float32)[:, None]  # (4, 1)
    row_part = at_tile[:, None, :] + slope_y[:, None, :] * lane  # (4 functions, 4 rows, n)
    column_part = slope_x[:, None, :] * lane  # (4 functions, 4 columns, n)
    values = (row_part[:, :, None, :] + column_part[:, None, :, :]).view(4, _TILE_PIXELS * n_tiles)
    inside = torch.minimum(torch.minimum(values[0], values[1]), values[2]) >= 0  # (16 * n,) pixel-major

    hit = torch.nonzero(inside).squeeze(1)
    if hit.numel() == 0:
        return
    slot = _exact_floor_div(hit, n_tiles)  # pixel of the tile, row-major
    tile = hit - slot * n_tiles
    slot_offset = torch.arange(_TILE_PIXELS, device=device)
    slot_offset = (slot_offset >> _TILE_LOG2) * padded_w + (slot_offset & (_TILE - 1))
    tile_origin = base.index_select(0, owner) + ((tile_row * padded_w + tile_col) << _TILE_LOG2)
    pixel = tile_origin.index_select(0, tile) + slot_offset.index_select(0, slot)
    face = face_id.index_select(0, owner.index_select(0, tile))
    key = (_orderable_int64(values[3].index_select(0, hit)) << 32) | face
    best.scatter_reduce_(0, pixel, key, reduce="amin", include_self=True)


def _barycentric_table(vertices_screen: torch.Tensor, faces: torch.Tensor, perspective_correct: bool):
    """Differentiable per-face coefficients, batch-major, in the input's dtype.

    Returns:
        ``(plane (6, B * F), depth_values (3, B * F))``, channel-major. ``plane`` holds corner 0
        ``(x0, y0)`` and ``(d b1/dx, d b1/dy, d b2/dx, d b2/dy)``, so that at a point ``p`` the
        screen-space barycentrics are ``b1 = (p - c0) . grad b1``, ``b2 = (p - c0) . grad b2``
        and ``b0 = 1 - b1 - b2``. ``depth_values`` are the corners' ``z`` (orthographic) or
        ``1 / z`` (perspective). Faces that cannot be drawn get finite placeholder values
        (never gathered), so their backward produces no NaN.
    """
    x, y, z = gather_corners(vertices_screen, faces).unbind(0)  # each (3, T)
    d1x, d1y = x[1] - x[0], y[1] - y[0]
    d2x, d2y = x[2] - x[0], y[2] - y[0]
    # screen_area's formula on the edge vectors the gradients need anyway (differentiated).
    area = d2x * d1y - d1x * d2y
    usable = torch.isfinite(area) & (area != 0)
    inverse_area = 1.0 / torch.where(usable, area, torch.ones_like(area))
    gradients = torch.stack([-d2y, d2x, d1y, -d1x]) * inverse_area  # (4, T)
    plane = torch.cat([x[:1], y[:1], gradients])  # (6, T)
    depth_values = z if not perspective_correct else 1.0 / torch.where(z > 0, z, torch.ones_like(z))
    return plane, depth_values


def _exact_floor_div(index: torch.Tensor, divisor: int) -> torch.Tensor:
    """``index // divisor`` for non-negative int64 below 2**40, via float64 (int64 division is
    slow on CPU); exact because the fractional part of ``(index + 0.5) / divisor`` stays at
    least ``0.5 / divisor`` away from an integer."""
    return torch.floor((index.to(torch.float64) + 0.5) / divisor).long()


def _pixel_centres(pixel_index: torch.Tensor, image_size: tuple[int, int], dtype):
    """Batch element ``(N,)`` int64 and screen-space centres ``x, y (N,)`` of flat pixel
    indices ``b * H * W + i * W + j``."""
    height, width = image_size
    batch_of = _exact_floor_div(pixel_index, height * width)
    within = pixel_index - batch_of * (height * width)
    row = _exact_floor_div(within, width)
    col = within - row * width
    return batch_of, col.to(dtype) + 0.5, row.to(dtype) + 0.5


def fragments_from_face_index(
    vertices_screen: torch.Tensor,
    faces: torch.Tensor,
    face_index: torch.Tensor,
    perspective_correct: bool = False,
) -> Fragments:
    """Differentiable pass: barycentrics and depth of the given triangle at each pixel centre.

    Args:
        vertices_screen: ``(B, V, 3)`` screen space ``(x px, y px, depth)``.
        faces: ``(F, 3)`` int64.
        face_index: ``(B, H, W)`` int64 triangle per pixel, ``-1`` for background (from any
            visibility pass).
        perspective_correct: perspective-correct barycentrics and depth (third coordinate is
            ``z_cam > 0``) instead of screen-space affine ones.

    Returns:
        :class:`Fragments`; ``bary`` and ``depth`` carry gradients to ``vertices_screen``.
        ``pixel_bary`` is an ``(N, 3)`` view of a channel-major ``(3, N)`` tensor.
    """
    batch, height, width = face_index.shape
    n_faces = faces.shape[0]
    flat = face_index.reshape(-1)
    pixel_index = torch.nonzero(flat >= 0).squeeze(1)
    pixel_face = flat.index_select(0, pixel_index)
    pixel_batch, cx, cy = _pixel_centres(pixel_index, (height, width), vertices_screen.dtype)
    rows = pixel_face + pixel_batch * n_faces if batch > 1 else pixel_face
    plane, depth_values = _barycentric_table(vertices_screen, faces, perspective_correct)
    plane = plane.index_select(1, rows)  # (6, N)
    depth_values = depth_values.index_select(1, rows)  # (3, N)
    x0, y0, b1_dx, b1_dy, b2_dx, b2_dy = plane.unbind(0)  # unbind: one backward node, not six
    px, py = cx - x0, cy - y0
    b1 = px * b1_dx + py * b1_dy
    b2 = px * b2_dx + py * b2_dy
    bary = torch.stack([1.0 - b1 - b2, b1, b2])  # (3, N)
    if perspective_correct:
        over_z = bary * depth_values  # depth_values hold 1 / z_cam
        inverse_depth = over_z.sum(dim=0)
        bary = over_z / inverse_depth
        depth = 1.0 / inverse_depth
    else:
        depth = (bary * depth_values).sum(dim=0)

    total = batch * height * width
    bary_image = scatter_channels(bary, pixel_index, total)
    depth_image = scatter_channels(depth[None], pixel_index, total)
    return Fragments(
        face_index=face_index,
        bary=bary_image.view(batch, height, width, 3),
        depth=depth_image.view(batch, height, width),
        mask=face_index >= 0,
        pixel_index=pixel_index,
        pixel_face=pixel_face,
        pixel_bary=bary.T,
        image_size=(height, width),
        covered_batch=pixel_batch,
    )

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
  must be the camera-space depth ``z_cam`` (what :meth:`renderer.cameras.PerspectiveCamera.project`
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
1. *Visibility* (no gradient): for every (batch element, triangle) the pixel centres of its
   bounding box, clipped to the image, are enumerated exactly (``repeat_interleave`` over the
   box sizes, no padding); the three edge functions and the depth plane are evaluated in
   coordinates local to the box, so precision does not depend on where the triangle lies on the
   screen. The nearest covering triangle per pixel is found with one ``scatter_reduce(amin)`` of a
   packed int64 key ``(order-preserving int32 of the float32 depth) << 32 | face index``. The
   (pixel, triangle) pairs are processed in chunks of at most ``max_pairs_per_chunk`` so memory
   stays bounded however large the triangles or the batch are.
2. *Barycentrics* (differentiable): for each covered pixel the barycentrics of its winning
   triangle are recomputed from the vertex positions, so gradients reach ``vertices_screen``
   through ``bary`` and ``depth``. Visibility itself (which triangle wins) is not differentiated.

Visibility is always resolved in float32 (the input may be float64); barycentrics and depth are
returned in the input's dtype.
"""

from __future__ import annotations

import torch

from renderer.fragments import Fragments

__all__ = ["rasterize", "rasterize_visibility", "fragments_from_face_index", "BACKENDS"]

BACKENDS = ("torch", "nvdiffrast", "auto")

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
            see :mod:`renderer.nvdiffrast_backend`) or ``"auto"`` (nvdiffrast when it is
            installed and the tensors are on CUDA, torch otherwise). All give the same
            :class:`Fragments`, with barycentrics computed by the same differentiable code.
        max_pairs_per_chunk: bound on the (pixel, triangle) candidate pairs held at once in
            the torch visibility pass.

    Returns:
        :class:`renderer.fragments.Fragments` with ``face_index (B, H, W)``,
        ``bary (B, H, W, 3)``, ``depth (B, H, W)`` and ``mask (B, H, W)``.
    """
    vertices_screen, faces, image_size = _check_inputs(vertices_screen, faces, image_size)
    chosen = _choose_backend(backend, vertices_screen)
    if chosen == "nvdiffrast":
        from renderer.nvdiffrast_backend import rasterize_visibility_nvdiffrast

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
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices_screen.shape[1]):
        raise ValueError(
            f"faces index vertices outside [0, {vertices_screen.shape[1]}): "
            f"min {int(faces.min())}, max {int(faces.max())}"
        )
    return vertices_screen, faces, (height, width)


def _choose_backend(backend: str, vertices_screen: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    from renderer.nvdiffrast_backend import nvdiffrast_available, require_nvdiffrast

    if backend == "nvdiffrast":
        require_nvdiffrast(vertices_screen.device)
        return "nvdiffrast"
    return "nvdiffrast" if vertices_screen.is_cuda and nvdiffrast_available() else "torch"


def _triangle_setup(
    corners: torch.Tensor,
    image_size: tuple[int, int],
    cull_backfaces: bool,
    perspective_correct: bool,
    near: float,
):
    """Per-triangle bounding boxes and local edge/depth planes.

    Args:
        corners: ``(T, 3, 3)`` screen-space corners of T triangles (any float dtype).

    Returns:
        ``(x0, y0, box_w, box_h, planes)``: int64 ``(T,)`` top-left pixel of the clipped box and
        its size (0 where the triangle produces nothing), and ``planes (T, 12)`` float32
        holding, for w0, w1, w2 and the depth key, ``(value at the box's first pixel centre,
        d/dx, d/dy)``. Edge functions are sign-normalised so that "inside" means all >= 0.
    """
    height, width = image_size
    c = corners.to(torch.float64)
    x, y, z = c[..., 0], c[..., 1], c[..., 2]
    area = (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0]) - (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0])
    valid = torch.isfinite(c).all(dim=(1, 2)) & (area != 0)
    if cull_backfaces:
        valid &= area > 0
    if perspective_correct:
        valid &= z.amin(dim=1) > near

    big = float(max(height, width) + 2)
    xmin = torch.ceil(x.amin(dim=1).clamp(-big, big) - 0.5).clamp(min=0)
    xmax = torch.floor(x.amax(dim=1).clamp(-big, big) - 0.5).clamp(max=width - 1)
    ymin = torch.ceil(y.amin(dim=1).clamp(-big, big) - 0.5).clamp(min=0)
    ymax = torch.floor(y.amax(dim=1).clamp(-big, big) - 0.5).clamp(max=height - 1)
    box_w = (xmax - xmin + 1).clamp(min=0)
    box_h = (ymax - ymin + 1).clamp(min=0)
    box_w = torch.where(valid, box_w, torch.zeros_like(box_w))

    # Edge function of edge (a -> b) at point p: (p.x - a.x)(b.y - a.y) - (p.y - a.y)(b.x - a.x);
    # edge k is opposite corner k, so w_k / area is the barycentric weight of corner k.
    sign = torch.where(area < 0, -torch.ones_like(area), torch.ones_like(area))
    ox, oy = xmin + 0.5, ymin + 0.5  # first pixel centre of the box
    planes = []
    weights_at_origin = []
    for k in range(3):
        a, b = (k + 1) % 3, (k + 2) % 3
        dx = y[:, b] - y[:, a]
        dy = -(x[:, b] - x[:, a])
        at_origin = (ox - x[:, a]) * dx + (oy - y[:, a]) * dy
        weights_at_origin.append((at_origin, dx, dy))
        planes += [at_origin * sign, dx * sign, dy * sign]
    safe_area = torch.where(valid, area, torch.ones_like(area))
    values = z if not perspective_correct else -1.0 / torch.where(valid[:, None], z, torch.ones_like(z))
    # Depth key = sum_k w_k * values_k / area: affine in screen space. Orthographic: the depth;
    # perspective: minus the inverse depth (1 / z_cam is affine in screen space).
    for j in range(3):
        planes.append(sum(weights_at_origin[k][j] * values[:, k] for k in range(3)) / safe_area)
    planes = torch.stack(planes, dim=1).to(torch.float32)
    return xmin.long(), ymin.long(), box_w.long(), box_h.long(), planes


def _orderable_int64(depth: torch.Tensor) -> torch.Tensor:
    """Map float32 values to int64 with the same order (monotonic increasing)."""
    bits = depth.contiguous().view(torch.int32)
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
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

    Returns:
        ``(B, H, W)`` int64 face index, ``-1`` where no triangle covers the pixel centre.
    """
    height, width = image_size
    batch, n_vertices = vertices_screen.shape[:2]
    n_faces = faces.shape[0]
    device = vertices_screen.device
    best = torch.full((batch * height * width,), _NO_HIT, dtype=torch.int64, device=device)
    if n_faces == 0 or batch == 0:
        return torch.full((batch, height, width), -1, dtype=torch.long, device=device)

    corners = vertices_screen.detach()[:, faces]  # (B, F, 3, 3)
    xmin, ymin, box_w, box_h, planes = _triangle_setup(
        corners.reshape(-1, 3, 3), image_size, cull_backfaces, perspective_correct, near
    )
    counts = box_w * box_h  # (B*F,)
    selected = torch.nonzero(counts > 0).squeeze(1)
    if selected.numel() == 0:
        return torch.full((batch, height, width), -1, dtype=torch.long, device=device)
    counts = counts[selected]
    box_w = box_w[selected]
    # Base pixel index of each box's first pixel, and packed triangle id (face index).
    batch_of = torch.div(selected, n_faces, rounding_mode="floor")
    base = batch_of * (height * width) + ymin[selected] * width + xmin[selected]
    face_id = selected - batch_of * n_faces
    planes = planes[selected]

    # Triangles whose clipped box fits in a small power-of-two tile are handled by broadcasting
    # (tile pixels x triangles, no per-pair gathers); they are grouped by tile shape. Larger ones
    # enumerate their exact box pixels with repeat_interleave. Both paths work in chunks of at
    # most max_pairs_per_chunk candidate pairs.
    log_w = torch.ceil(torch.log2(box_w.to(torch.float32))).long()
    log_h = torch.ceil(torch.log2(box_h[selected].to(torch.float32))).long()
    small = (log_w <= _TILE_LOG2_MAX) & (log_h <= _TILE_LOG2_MAX)
    group = torch.where(small, log_h * (_TILE_LOG2_MAX + 1) + log_w, torch.full_like(log_w, _LARGE_GROUP))
    order = torch.argsort(group)
    group_sizes = torch.bincount(group, minlength=_LARGE_GROUP + 1).tolist()
    offset = 0
    for group_id, size in enumerate(group_sizes):
        if size == 0:
            continue
        members = order[offset:offset + size]
        offset += size
        if group_id == _LARGE_GROUP:
            _visibility_large(best, members, counts, box_w, base, face_id, planes, width, max_pairs_per_chunk)
        else:
            tile_h = 1 << (group_id // (_TILE_LOG2_MAX + 1))
            tile_w = 1 << (group_id % (_TILE_LOG2_MAX + 1))
            _visibility_tiles(
                best, members, box_w, counts, base, face_id, planes, width, tile_h, tile_w,
                max_pairs_per_chunk,
            )

    face_index = torch.where(best == _NO_HIT, torch.full_like(best, -1), best & _LOW32)
    return face_index.view(batch, height, width)


_TILE_LOG2_MAX = 5  # tiles up to 32 x 32 pixels
_LARGE_GROUP = (_TILE_LOG2_MAX + 1) ** 2


def _fold_hits(
    best: torch.Tensor,
    inside: torch.Tensor,
    depth_planes: torch.Tensor,
    fx: torch.Tensor,
    fy: torch.Tensor,
    pixel: torch.Tensor,
    face_id: torch.Tensor,
) -> None:
    """Scatter the packed (depth, face) keys of the covered candidates into ``best`` (amin)."""
    hit = torch.nonzero(inside.reshape(-1)).squeeze(1)
    if hit.numel() == 0:
        return
    depth = depth_planes[0].reshape(-1)[hit] + depth_planes[1].reshape(-1)[hit] * fx.reshape(-1)[hit] \
        + depth_planes[2].reshape(-1)[hit] * fy.reshape(-1)[hit]
    key = (_orderable_int64(depth) << 32) | face_id.reshape(-1)[hit]
    best.scatter_reduce_(0, pixel.reshape(-1)[hit], key, reduce="amin", include_self=True)


def _visibility_tiles(
    best, members, box_w, counts, base, face_id, planes, width, tile_h, tile_w, max_pairs
) -> None:
    """Triangles whose clipped box fits a ``tile_h x tile_w`` tile: broadcast over the tile."""
    device = best.device
    ly, lx = torch.meshgrid(
        torch.arange(tile_h, device=device), torch.arange(tile_w, device=device), indexing="ij"
    )
    ly, lx = ly.reshape(1, -1), lx.reshape(1, -1)
    fx, fy = lx.to(torch.float32), ly.to(torch.float32)
    chunk = max(1, max_pairs // (tile_h * tile_w))
    for start in range(0, members.numel(), chunk):
        idx = members[start:start + chunk]
        p = planes.index_select(0, idx)  # (T, 12)
        bw = box_w.index_select(0, idx)[:, None]
        bh = torch.div(counts.index_select(0, idx), box_w.index_select(0, idx), rounding_mode="floor")[:, None]
        inside = (lx < bw) & (ly < bh)
        for k in range(3):
            inside &= (p[:, 3 * k, None] + p[:, 3 * k + 1, None] * fx + p[:, 3 * k + 2, None] * fy) >= 0
        pixel = base.index_select(0, idx)[:, None] + ly * width + lx
        tri_face = face_id.index_select(0, idx)[:, None].expand_as(pixel)
        depth_planes = (p[:, 9, None].expand_as(inside), p[:, 10, None].expand_as(inside),
                        p[:, 11, None].expand_as(inside))
        _fold_hits(best, inside, depth_planes, fx.expand_as(inside), fy.expand_as(inside), pixel, tri_face)


def _visibility_large(best, members, counts, box_w, base, face_id, planes, width, max_pairs) -> None:
    """Triangles with a large box: enumerate exactly the box pixels, in chunks of triangles."""
    device = best.device
    member_counts = counts.index_select(0, members)
    ends = torch.cumsum(member_counts, 0)
    ends_list = ends.tolist()
    lo = 0
    while lo < members.numel():
        start = 0 if lo == 0 else ends_list[lo - 1]
        hi = int(torch.searchsorted(ends, torch.tensor(start + max_pairs, device=device), right=True))
        hi = max(hi, lo + 1)  # one triangle never exceeds H * W pairs
        n_pairs = ends_list[hi - 1] - start
        idx = members[lo:hi]
        c = member_counts[lo:hi]
        tri = torch.repeat_interleave(torch.arange(idx.numel(), device=device), c, output_size=n_pairs)
        local = torch.arange(n_pairs, device=device) - (torch.cumsum(c, 0) - c).index_select(0, tri)
        w_of = box_w.index_select(0, idx).index_select(0, tri)
        ly = torch.div(local, w_of, rounding_mode="floor")
        lx = local - ly * w_of
        fx, fy = lx.to(torch.float32), ly.to(torch.float32)
        p = planes.index_select(0, idx).index_select(0, tri)
        inside = torch.ones_like(lx, dtype=torch.bool)
        for k in range(3):
            inside &= (p[:, 3 * k] + p[:, 3 * k + 1] * fx + p[:, 3 * k + 2] * fy) >= 0
        pixel = base.index_select(0, idx).index_select(0, tri) + ly * width + lx
        tri_face = face_id.index_select(0, idx).index_select(0, tri)
        _fold_hits(best, inside, (p[:, 9], p[:, 10], p[:, 11]), fx, fy, pixel, tri_face)
        lo = hi


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
    """
    batch, height, width = face_index.shape
    n_vertices = vertices_screen.shape[1]
    flat = face_index.reshape(-1)
    pixel_index = torch.nonzero(flat >= 0).squeeze(1)
    pixel_face = flat[pixel_index]
    pixel_batch = torch.div(pixel_index, height * width, rounding_mode="floor")
    within = pixel_index - pixel_batch * (height * width)
    row = torch.div(within, width, rounding_mode="floor")
    col = within - row * width
    dtype = vertices_screen.dtype

    corner_ids = faces[pixel_face] + (pixel_batch * n_vertices)[:, None]  # (N, 3)
    corners = vertices_screen.reshape(-1, 3)[corner_ids.reshape(-1)].view(-1, 3, 3)
    cx = (col.to(dtype) + 0.5)[:, None]
    cy = (row.to(dtype) + 0.5)[:, None]
    x, y, z = corners[..., 0], corners[..., 1], corners[..., 2]  # (N, 3)
    xa, ya = x.roll(-1, dims=1), y.roll(-1, dims=1)  # corner k+1
    xb, yb = x.roll(-2, dims=1), y.roll(-2, dims=1)  # corner k+2
    weights = (cx - xa) * (yb - ya) - (cy - ya) * (xb - xa)  # (N, 3), edge opposite corner k
    bary = weights / weights.sum(dim=1, keepdim=True)
    if perspective_correct:
        over_z = bary / z
        inv_depth = over_z.sum(dim=1, keepdim=True)
        bary = over_z / inv_depth
        depth = 1.0 / inv_depth.squeeze(1)
    else:
        depth = (bary * z).sum(dim=1)

    total = batch * height * width
    bary_image = torch.zeros(total, 3, dtype=dtype, device=vertices_screen.device)
    bary_image = bary_image.index_copy(0, pixel_index, bary).view(batch, height, width, 3)
    depth_image = torch.zeros(total, dtype=dtype, device=vertices_screen.device)
    depth_image = depth_image.index_copy(0, pixel_index, depth).view(batch, height, width)
    return Fragments(
        face_index=face_index,
        bary=bary_image,
        depth=depth_image,
        mask=face_index >= 0,
        pixel_index=pixel_index,
        pixel_face=pixel_face,
        pixel_bary=bary,
        image_size=(height, width),
    )

"""Describe what a model file (or a folder of them) holds: ``flamefit inspect``.

Every file is read through the same loaders the toolkit uses, so inspecting a file also checks
it: a file that would fail to load reports the loader's error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flamefit.flame.errors import ModelFileError
from flamefit.flame.pose_layout import JOINT_NAMES


def _array_line(name: str, value) -> str:
    if isinstance(value, np.ndarray):
        return f"  {name:<26} {str(value.shape):<18} {value.dtype}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # torch tensors, sparse matrices
        return f"  {name:<26} {str(tuple(value.shape)):<18} {value.dtype} ({type(value).__name__})"
    text = repr(value)
    return f"  {name:<26} {text if len(text) < 60 else text[:57] + '...'}"


def _extent(points: np.ndarray) -> str:
    low, high = points.min(axis=0), points.max(axis=0)
    size = high - low
    return (f"x {low[0]:+.3f}..{high[0]:+.3f}, y {low[1]:+.3f}..{high[1]:+.3f}, "
            f"z {low[2]:+.3f}..{high[2]:+.3f} m (size {size[0]:.3f} x {size[1]:.3f} x "
            f"{size[2]:.3f} m)")


def describe_model(path: Path) -> list[str]:
    """Lines describing a FLAME-format model file (``.pkl`` or converted ``.npz``)."""
    from flamefit.flame.model_file import load_flame_model

    model = load_flame_model(path)
    kind = "procedural test head (NOT FLAME)" if model.is_demo else "FLAME-format model"
    lines = [
        f"{kind}: {model.n_vertices} vertices, {model.n_faces} faces, {model.n_joints} joints",
        f"  identity components    {model.n_shape}",
        f"  expression components  {model.n_expression}",
        f"  pose correctives       {model.posedirs.shape[2]}",
        f"  template extent        {_extent(model.v_template)}",
        "  joints (rest pose, m):",
    ]
    joints = model.j_regressor @ model.v_template
    for index, (parent, joint) in enumerate(zip(model.parents, joints)):
        name = JOINT_NAMES[index] if index < len(JOINT_NAMES) else f"joint {index}"
        lines.append(f"    {index} {name:<10} parent {int(parent):>2}   "
                     f"({joint[0]:+.4f}, {joint[1]:+.4f}, {joint[2]:+.4f})")
    for key, value in sorted(model.extras.items()):
        lines.append(_array_line(key, value))
    return lines


def describe_landmarks(path: Path) -> list[str]:
    """Lines describing a landmark embedding (DECA's or the RingNet/smplx pair)."""
    from flamefit.flame.landmark_embedding import load_landmark_embedding

    emb = load_landmark_embedding(path)
    return [
        f"landmark embedding ({emb.source})",
        f"  static landmarks       {emb.static_faces.shape[0]} (faces {emb.static_faces.min()}"
        f"..{emb.static_faces.max()})",
        f"  dynamic contour table  {emb.dynamic_faces.shape[0]} yaw rows x "
        f"{emb.dynamic_faces.shape[1]} points",
        f"  full 3D landmarks      {emb.full_faces.shape[0]}",
    ]


def describe_template(path: Path) -> list[str]:
    from flamefit.flame.uv_template import load_uv_template

    uv = load_uv_template(path)
    return [
        f"UV template: {uv.n_vertices} vertices, {uv.faces.shape[0]} faces, "
        f"{uv.vt.shape[0]} texture coordinates",
        f"  uv range               u {uv.vt[:, 0].min():.3f}..{uv.vt[:, 0].max():.3f}, "
        f"v {uv.vt[:, 1].min():.3f}..{uv.vt[:, 1].max():.3f}",
    ]


def describe_texture(path: Path) -> list[str]:
    from flamefit.flame.texture_space_io import load_texture_space

    space = load_texture_space(path)
    lines = [
        f"albedo space: {space.resolution}x{space.mean.shape[1]} texels, "
        f"{space.n_components} components",
        f"  mean albedo (RGB 0-1)  {np.round(space.mean.reshape(-1, 3).mean(axis=0), 3)}",
        f"  uv layout included     {'yes' if space.vt is not None else 'no'}",
    ]
    lines += [_array_line(key, value) for key, value in sorted(space.metadata.items())]
    return lines


def describe_masks(path: Path) -> list[str]:
    from flamefit.flame.vertex_masks import load_vertex_masks

    masks = load_vertex_masks(path)
    lines = [f"vertex masks: {len(masks)} regions"]
    lines += [f"  {name:<26} {len(index)} vertices" for name, index in sorted(masks.items())]
    return lines


def _kind_of(path: Path) -> str:
    """Guess what a file is from its name and, for pickles and npz, its keys."""
    name, suffix = path.name.lower(), path.suffix.lower()
    if suffix == ".obj":
        return "template"
    if "mask" in name:
        return "masks"
    if "embedding" in name:
        return "landmarks"
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
        return "texture" if keys & {"mean", "tex_dir", "MU", "PC"} else "model"
    if suffix == ".npy":
        return "landmarks"
    return "model"


DESCRIBERS = {
    "model": describe_model,
    "landmarks": describe_landmarks,
    "template": describe_template,
    "texture": describe_texture,
    "masks": describe_masks,
}


def describe_file(path: str | Path) -> tuple[str, bool]:
    """A readable description of one model file and whether it loaded; on failure the text
    carries the loader's error instead."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(path, "no such file or folder")
    try:
        lines = DESCRIBERS[_kind_of(path)](path)
    except (ModelFileError, OSError, ValueError) as error:
        return f"{path}\n  could not be read: {error}", False
    return "\n".join([str(path), *lines]), True


def describe_path(path: str | Path) -> tuple[str, int]:
    """Describe a file, or every known model file in a folder; returns the text and the number
    of files that failed to load."""
    from flamefit.flame.selection import LANDMARK_NAMES, MASKS_NAME, MODEL_NAMES, TEMPLATE_NAME, TEXTURE_NAMES

    path = Path(path)
    if path.is_dir():
        names = (*MODEL_NAMES, *LANDMARK_NAMES, TEMPLATE_NAME, *TEXTURE_NAMES, MASKS_NAME)
        files = [path / name for name in names if (path / name).is_file()]
        if not files:
            raise ModelFileError(path, f"holds none of the model files ({', '.join(names)})")
    else:
        files = [path]
    described = [describe_file(file) for file in files]
    return "\n\n".join(text for text, _ in described), sum(not ok for _, ok in described)

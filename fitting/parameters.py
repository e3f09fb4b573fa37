"""Fitted parameters: the tensors the optimiser owns, and their ``params.npz`` form.

Names and shapes follow ARCHITECTURE.md: ``shape (B,S)``, ``expression (B,E)``, ``pose (B,15)``
(global, neck, jaw, left eye, right eye, axis-angle), ``texture (B,K)``, ``light (B,9,3)`` and
``camera``: orthographic ``(B,3)`` ``[s, tx, ty]`` (DECA's) or perspective ``(B,3)``
``[tx, ty, tz]`` (metres; rotation is the global pose, focal length fixed). A DECA-style
code dict (``shape`` 100, ``exp`` 50, ``pose`` 6, ``cam`` 3, ``tex`` 50, ``light`` 27) is accepted
as an initialisation.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from flamefit.flame.pose_layout import N_DECA_POSE, N_POSE, deca_to_full
from flamefit.renderer.shading import constant_light

PARAMETER_NAMES = ("shape", "expression", "pose", "texture", "light", "camera")


@dataclass
class FitParameters:
    """Per-image parameters of a batch, all ``(B, ...)`` tensors on one device.

    Attributes:
        shape: ``(B, S)`` identity coefficients.
        expression: ``(B, E)`` expression coefficients.
        pose: ``(B, 15)`` axis-angle of global, neck, jaw, left eye, right eye.
        texture: ``(B, K)`` albedo-space coefficients.
        light: ``(B, 9, 3)`` second-order SH light per RGB channel.
        camera: ``(B, 3)`` orthographic ``[s, tx, ty]`` in the crop's normalised coordinates,
            or ``(B, 3)`` perspective ``[tx, ty, tz]`` (metres, with a fixed focal length).
    """

    shape: torch.Tensor
    expression: torch.Tensor
    pose: torch.Tensor
    texture: torch.Tensor
    light: torch.Tensor
    camera: torch.Tensor

    @classmethod
    def zeros(
        cls, batch: int, n_shape: int, n_expression: int, n_texture: int,
        camera: torch.Tensor, device: torch.device | str = "cpu",
    ) -> "FitParameters":
        """Neutral start: zero coefficients and pose, ambient white light, the given camera."""
        return cls(
            shape=torch.zeros(batch, n_shape, device=device),
            expression=torch.zeros(batch, n_expression, device=device),
            pose=torch.zeros(batch, N_POSE, device=device),
            texture=torch.zeros(batch, n_texture, device=device),
            light=constant_light(1.0, batch, device=device),  # shading 1 everywhere
            camera=camera.to(device).expand(batch, -1).clone(),
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def detach(self) -> "FitParameters":
        return FitParameters(**{k: v.detach().clone() for k, v in self.tensors().items()})

    def to(self, device: torch.device | str) -> "FitParameters":
        return FitParameters(**{k: v.to(device) for k, v in self.tensors().items()})

    def item(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index`` as numpy arrays without the batch axis (for ``params.npz``)."""
        return {k: v[index].detach().cpu().numpy() for k, v in self.tensors().items()}

    def select(self, keep: torch.Tensor, other: "FitParameters") -> "FitParameters":
        """Per item: these parameters where ``keep`` (B,) is True, else ``other``'s."""
        out = {}
        for name, value in self.tensors().items():
            mask = keep.view(-1, *([1] * (value.dim() - 1)))
            out[name] = torch.where(mask, value, getattr(other, name))
        return FitParameters(**out)


def save_parameters(path: str | Path, params: dict[str, np.ndarray], **extra) -> Path:
    """Write one image's parameters as ``params.npz`` (atomic). ``extra`` adds arrays/strings."""
    from flamefit.utils import write_npz

    return write_npz(path, **params, **extra)


def _fit(value: np.ndarray, size: int) -> np.ndarray:
    """Truncate or zero-pad a coefficient vector to ``size``."""
    value = np.asarray(value, dtype=np.float32).reshape(-1)
    out = np.zeros(size, dtype=np.float32)
    out[: min(size, value.size)] = value[:size]
    return out


def _read_any(path: Path) -> dict:
    """Read a parameter file: ``.npz``, ``.npy`` (0-d dict) or ``.pkl`` (plain arrays only)."""
    if path.suffix == ".npz":
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path}: not a valid .npz file (not a zip archive, or truncated)")
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except zipfile.BadZipFile:
            raise ValueError(f"{path}: not a valid .npz file (not a zip archive, or truncated)") from None
        except ValueError as error:
            if "allow_pickle" not in str(error):
                raise ValueError(f"{path}: cannot read the .npz ({error})") from None
            raise ValueError(f"{path}: holds pickled Python objects, which flamefit does not load "
                             "(they can run code); save plain numeric arrays with np.savez") from None
    if path.suffix == ".npy":
        from flamefit.flame.pickle_io import load_object_npy

        # DECA saves its code dict with np.save (a pickle, possibly of torch tensors): read it
        # through the restricted unpickler, which refuses anything but arrays and tensors.
        value = load_object_npy(path, allow_torch=True)
        if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
            value = value.item()
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a dict saved with np.save; got {type(value).__name__}")
        return value
    if path.suffix == ".pkl":
        from flamefit.flame.pickle_io import load_pickle

        return dict(load_pickle(path))
    raise ValueError(f"{path}: unsupported parameter file type {path.suffix!r} (use .npz, .npy or .pkl)")


def load_initialisation(
    path: str | Path, n_shape: int, n_expression: int, n_texture: int
) -> dict[str, np.ndarray]:
    """Initial parameters for one image from our ``params.npz`` or a DECA-style code dict.

    DECA's keys (``shape`` 100, ``exp`` 50, ``pose`` 6 = global + jaw, ``cam`` 3, ``tex`` 50,
    ``light`` 27 or (9,3)) are mapped to ours; coefficient vectors are truncated or zero-padded
    to the model's sizes. Missing entries are left out (the caller keeps its defaults).

    Returns:
        dict with some of ``shape (S,)``, ``expression (E,)``, ``pose (15,)``, ``texture (K,)``,
        ``light (9, 3)``, ``camera (3,)``.

    Raises:
        ValueError: unreadable file or wrongly shaped entries, naming the file.
    """
    path = Path(path)
    try:
        raw = _read_any(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: cannot read initialisation ({error})") from None
    raw = {k: np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in raw.items()}
    raw = {k: (v[0] if v.ndim >= 2 and v.shape[0] == 1 else v) for k, v in raw.items()}
    out: dict[str, np.ndarray] = {}
    if "shape" in raw:
        out["shape"] = _fit(raw["shape"], n_shape)
    expression = raw.get("expression", raw.get("exp"))
    if expression is not None:
        out["expression"] = _fit(expression, n_expression)
    tex = raw.get("texture", raw.get("tex"))
    if tex is not None:
        out["texture"] = _fit(tex, n_texture)
    if "pose" in raw:
        pose = np.asarray(raw["pose"], dtype=np.float32).reshape(-1)
        if pose.size == N_DECA_POSE:
            pose = deca_to_full(pose)
        if pose.size != N_POSE:
            raise ValueError(f"{path}: pose has {pose.size} values; expected {N_POSE} or {N_DECA_POSE} (global + jaw)")
        out["pose"] = pose
    if "light" in raw:
        light = np.asarray(raw["light"], dtype=np.float32).reshape(-1)
        if light.size != 27:
            raise ValueError(f"{path}: light has {light.size} values; expected 27 (9 SH x RGB)")
        out["light"] = light.reshape(9, 3)
    camera = raw.get("camera", raw.get("cam"))
    if camera is not None:
        out["camera"] = np.asarray(camera, dtype=np.float32).reshape(-1)
    if not out:
        raise ValueError(
            f"{path}: holds none of shape/expression/exp/pose/texture/tex/light/camera/cam; "
            "pass a params.npz written by flamefit or a DECA code dict"
        )
    return out

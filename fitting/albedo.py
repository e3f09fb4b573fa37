"""The linear albedo model used by the fit: ``albedo(c) = mean + sum_k c_k basis_k`` in UV space."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flamefit.flame.model_data import TextureSpace

# A neutral mid skin tone (linear RGB in [0, 1]) for models that come without an albedo space.
CONSTANT_SKIN_RGB = (0.70, 0.52, 0.44)


class AlbedoModel(nn.Module):
    """A texture space as tensors, resampled to the fitting texture resolution.

    Buffers:
        mean: ``(1, 3, T, T)`` RGB in [0, 1], UV image (row 0 = top, v = 1).
        basis: ``(K, 3, T, T)`` RGB per unit coefficient.
    """

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor, source: str = ""):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("basis", basis)
        self.source = source

    @staticmethod
    def check_uv_layout(space: TextureSpace, ft, path, model: str) -> None:
        """Refuse a texture space made for another UV layout than the model's (``ft``: the
        model's ``(F, 3)`` texture-coordinate indices), naming both.

        Raises:
            flamefit.flame.errors.ModelFileError: the layouts differ (another model's space).
        """
        from flamefit.flame.errors import ModelFileError

        if space.ft is not None and tuple(space.ft.shape) != tuple(ft.shape):
            raise ModelFileError(path, f"its UV layout has {space.ft.shape[0]} faces but the model in use "
                                       f"({model}) has {ft.shape[0]}; use a texture space built for this "
                                       "model, or pick the model it was built for with --flame-dir or "
                                       "--open-model")

    @classmethod
    def from_texture_space(
        cls, space: TextureSpace, n_components: int | None = None, resolution: int = 256
    ) -> "AlbedoModel":
        """Use the first ``n_components`` of ``space`` at ``resolution`` texels (area-resampled)."""
        k = space.n_components if n_components is None else min(n_components, space.n_components)
        mean = torch.from_numpy(np.ascontiguousarray(space.mean)).permute(2, 0, 1)[None].float()
        basis = torch.from_numpy(np.ascontiguousarray(space.basis[..., :k])).permute(3, 2, 0, 1).float()
        if mean.shape[-1] != resolution:
            mean = F.interpolate(mean, size=(resolution, resolution), mode="area")
            basis = F.interpolate(basis, size=(resolution, resolution), mode="area")
        return cls(mean.contiguous(), basis.contiguous(), source=space.source)

    @classmethod
    def constant(cls, resolution: int = 256, rgb=CONSTANT_SKIN_RGB) -> "AlbedoModel":
        """A uniform skin albedo with no components (per-texel offsets can still refine it)."""
        mean = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, resolution, resolution)
        return cls(mean.contiguous(), torch.zeros(0, 3, resolution, resolution), source="constant skin albedo")

    @property
    def n_components(self) -> int:
        return int(self.basis.shape[0])

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` coefficients -> ``(B, 3, T, T)`` albedo UV maps."""
        if self.n_components == 0:
            return self.mean.expand(coefficients.shape[0], -1, -1, -1)
        return self.mean + torch.einsum("bk,kchw->bchw", coefficients, self.basis)

"""The image regressor: a small residual CNN from a face crop to the fit's parameters.

Input: the fit's face crop (:mod:`flamefit.fitting.crop`: the 68 landmarks' box x 1.25, square,
``R x R``), ``(B, 3, R, R)`` RGB in [0, 1]. Output: :class:`flamefit.fitting.parameters.FitParameters`
for that crop with the orthographic camera ``[s, tx, ty]``
(:class:`flamefit.renderer.camera_models.OrthographicCameraModel`), so a prediction is exactly
what ``flamefit fit`` would start from or save.

The encoder is a ResNet-18 layout (a 7x7 stride-2 stem, max-pool, four stages of two basic
blocks, global average pooling) at a configurable width (``width=32``: half of ResNet-18's
channels, 2.8 M weights); the head is one hidden layer. Outputs are parameterised so that zero
means "a neutral frontal face filling the crop": the global rotation as a 6-D vector added to
the identity's, the jaw as a small axis-angle, blendshape weights through a sigmoid into the
model's range, the SH light as an offset from white ambient light, the scale as a log offset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from flamefit.fitting.landmark_regressor import axis_angle_from_rotation, rotation_from_6d
from flamefit.fitting.parameters import FitParameters
from flamefit.flame.pose_layout import GLOBAL, JAW, N_POSE
from flamefit.renderer.shading import SH_CONSTANT_FACTORS

#: The file a trained regressor is saved in (in its folder), and its format version.
REGRESSOR_FILE = "regressor.pt"
FORMAT_VERSION = 1

#: The camera scale a zero output predicts (``OrthographicCameraModel.initial``'s).
BASE_SCALE = 8.0


@dataclass(frozen=True)
class RegressorSpec:
    """What a regressor predicts and for which model.

    Attributes:
        n_shape, n_expression, n_texture: coefficients predicted (the fit's counts for the model).
        expression_bounds: the model's blendshape range, or None (unbounded PCA expressions).
        resolution: crop side the network takes (pixels).
        width: channels of the first stage (ResNet-18: 64).
        model_sha256: the head-model file it was trained for.
        model_description: that model, in words (for reports).
    """

    n_shape: int
    n_expression: int
    n_texture: int
    expression_bounds: tuple[float, float] | None
    resolution: int = 224
    width: int = 32
    model_sha256: str = ""
    model_description: str = ""

    @property
    def n_outputs(self) -> int:
        return 6 + 3 + self.n_expression + self.n_shape + self.n_texture + 27 + 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RegressorSpec":
        bounds = values.get("expression_bounds")
        return cls(**{**values, "expression_bounds": None if bounds is None else tuple(bounds)})


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a (projected) shortcut."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def encoder(width: int) -> nn.Sequential:
    """ResNet-18's layout at ``width`` channels in the first stage; ``(B, 3, R, R)`` ->
    ``(B, 8 * width)`` features."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    channels = width
    for stage in range(4):
        out = width * 2 ** stage
        layers += [BasicBlock(channels, out, 1 if stage == 0 else 2), BasicBlock(out, out, 1)]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


#: ImageNet-style per-channel normalisation of the input (RGB, [0, 1] images).
_MEAN, _STD = (0.5, 0.45, 0.4), (0.25, 0.25, 0.25)


class ImageRegressor(nn.Module):
    """``(B, 3, R, R)`` face crops in [0, 1] -> the fit's parameters for those crops."""

    def __init__(self, spec: RegressorSpec):
        super().__init__()
        self.spec = spec
        self.encoder = encoder(spec.width)
        features = 8 * spec.width
        self.head = nn.Sequential(nn.Linear(features, 2 * features), nn.SiLU(),
                                  nn.Linear(2 * features, spec.n_outputs))
        nn.init.zeros_(self.head[-1].weight)  # start from the neutral frontal face
        nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def to_device(self, device) -> "ImageRegressor":
        """Move to ``device``; on CUDA in channels-last layout (faster convolutions there; on the
        CPU, PyTorch 2.13's channels-last convolution backward crashed at width 8)."""
        self.to(device)
        if torch.device(device).type == "cuda":
            self.to(memory_format=torch.channels_last)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` -> ``(B, n_outputs)`` raw outputs (see :meth:`decode`)."""
        if images.is_cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.head(self.encoder((images - self.mean) / self.std))

    def decode(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs -> ``rotation (B, 3, 3)`` (global, model to camera-facing frame),
        ``jaw (B, 3)`` axis-angle, ``expression (B, E)``, ``shape (B, S)``, ``texture (B, K)``,
        ``light (B, 9, 3)``, ``camera (B, 3)`` ``[s, tx, ty]`` of the crop. Float32."""
        raw = raw.float()
        spec = self.spec
        identity = raw.new_tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        parts = torch.split(raw, [6, 3, spec.n_expression, spec.n_shape, spec.n_texture, 27, 3], dim=1)
        six, jaw, expression, shape, texture, light, camera = parts
        if spec.expression_bounds is not None:
            low, high = spec.expression_bounds
            expression = low + (high - low) * torch.sigmoid(expression - 3.0)
        ambient = torch.zeros(1, 9, 3, dtype=raw.dtype, device=raw.device)
        ambient[:, 0] = 0.75 / SH_CONSTANT_FACTORS[0]
        camera = torch.cat([BASE_SCALE * torch.exp(camera[:, :1] * 0.5), camera[:, 1:] * 0.05], dim=1)
        return {"rotation": rotation_from_6d(identity + six), "jaw": jaw * 0.1,
                "expression": expression, "shape": shape, "texture": texture,
                "light": ambient + light.view(-1, 9, 3) * 0.5, "camera": camera}

    def predict(self, images: torch.Tensor) -> FitParameters:
        """Parameters for ``images (B, 3, R, R)`` (no gradients; eval mode is the caller's)."""
        with torch.no_grad():
            return parameters_from_outputs(self.decode(self(images)))


def parameters_from_outputs(out: dict[str, torch.Tensor]) -> FitParameters:
    """Decoded outputs -> :class:`FitParameters` (neck and eyes at rest)."""
    pose = out["jaw"].new_zeros(out["jaw"].shape[0], N_POSE)
    pose[:, GLOBAL] = axis_angle_from_rotation(out["rotation"])
    pose[:, JAW] = out["jaw"]
    return FitParameters(shape=out["shape"], expression=out["expression"], pose=pose,
                         texture=out["texture"], light=out["light"], camera=out["camera"])


def count_weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(spec: RegressorSpec) -> str:
    """One line: architecture and size."""
    weights = count_weights(ImageRegressor(spec))
    return (f"ResNet-18 layout at width {spec.width} ({weights / 1e6:.1f} M weights), "
            f"{spec.resolution}² crops -> {spec.n_shape} shape, {spec.n_expression} expression, "
            f"{spec.n_texture} albedo, pose, SH light, camera")


def log_scale_error(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``|log s_pred - log s_true|`` per item for ``(B, 3)`` cameras."""
    return (predicted[:, 0].clamp_min(1e-6).log() - truth[:, 0].clamp_min(1e-6).log()).abs()


__all__ = ["RegressorSpec", "ImageRegressor", "parameters_from_outputs", "describe",
           "BASE_SCALE", "log_scale_error"]


def load_image_regressor(path: str | Path, device="cpu") -> ImageRegressor:
    """A trained regressor from ``regressor.pt`` or its folder, in eval mode on ``device``.

    Raises:
        ValueError: missing, unreadable or of another format (one line saying which).
    """
    import pickle

    path = Path(path)
    if path.is_dir():
        path = path / REGRESSOR_FILE
    if not path.is_file():
        raise ValueError(f"{path}: no trained image regressor there (train one with "
                         "`flamefit train-regressor --out DIR`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: not a readable regressor file ({error})") from None
    if not isinstance(payload, dict) or payload.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: a regressor file of another format version; retrain it")
    network = ImageRegressor(RegressorSpec.from_dict(payload["spec"]))
    network.load_state_dict(payload["state"])
    return network.to_device(device).eval()

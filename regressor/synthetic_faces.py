"""Synthetic training faces for the image regressor, drawn and rendered on the training device.

Each face: identity, expression and albedo coefficients from the model's priors; a wide pose
(yaw up to ±90°, pitch ±40°, roll ±25°); an open or closed jaw; a random SH light (ambient
with a tint plus a directional part); a camera that frames the head **by the fit's crop rule**
(:func:`flamefit.fitting.crop.crop_box`: the 68 landmarks' box, side 1.25 x its mean extent),
jittered by a few per cent as a detector's landmarks would move it. The render is composited
over a background cut from real photos (:func:`background_bank`) or a procedural one, and
augmented: occluders (a hand or a microphone: an ellipse or a bar filled with another photo's
patch or a flat colour) on a quarter of the faces, blur, noise, colour, contrast and gamma
changes, some grey-scale. Labels are exact: the parameters that made the render.

Every draw comes from a ``torch.Generator`` on the CPU, so a batch depends only on its seed
(training resumes exactly); the rendering and augmentation run on the scene's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flamefit.fitting.crop import DEFAULT_SCALE
from flamefit.fitting.parameters import FitParameters
from flamefit.flame.pose_layout import GLOBAL, JAW
from flamefit.renderer.shading import SH_CONSTANT_FACTORS

#: scikit-image's bundled photos used as backgrounds (the astronaut, a face, is left out).
SKIMAGE_BACKGROUNDS = ("coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
                       "brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
                       "retina.jpg", "color.png", "page.png", "camera.png", "horse.png")
TILE = 256


@dataclass
class SyntheticFaces:
    """A batch of synthetic crops and their truth (on the sampler's device).

    Attributes:
        images: ``(B, 3, R, R)`` RGB in [0, 1].
        truth: the parameters that made them (orthographic camera of the crop).
        landmarks_px: ``(B, 68, 2)`` the model's 68 landmarks, crop screen pixels.
        occluded: ``(B,)`` bool, an occluder was drawn.
        yaw_deg: ``(B,)`` the head's yaw (degrees, + turns the face toward the image's right).
    """

    images: torch.Tensor
    truth: FitParameters
    landmarks_px: torch.Tensor
    occluded: torch.Tensor
    yaw_deg: torch.Tensor


def euler_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``R = R_y(yaw) R_x(pitch) R_z(roll)`` for angles in radians ``(B,)`` -> ``(B, 3, 3)``."""
    from flamefit.fitting.landmark_regressor import _euler_rotation

    return _euler_rotation(yaw, pitch, roll)


def background_bank(device, folder: str | Path | None = None, tiles_per_image: int = 6,
                    seed: int = 0) -> torch.Tensor:
    """``(N, 3, 256, 256)`` background tiles in [0, 1]: random crops (a quarter to all of the
    shorter side) of the photos in ``folder`` (any images), or of scikit-image's bundled photos
    when ``folder`` is None."""
    import cv2

    from flamefit.fitting.image_io import load_image

    if folder is None:
        import skimage.data

        root = Path(skimage.data.__file__).parent
        paths = [root / name for name in SKIMAGE_BACKGROUNDS if (root / name).is_file()]
    else:
        from flamefit.fitting.plan import IMAGE_SUFFIXES

        paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ValueError(f"--backgrounds {folder}: no images found there")
    rng = np.random.default_rng(seed)
    tiles = []
    for path in paths:
        rgb = load_image(path).rgb
        height, width = rgb.shape[:2]
        for _ in range(tiles_per_image):
            side = int(min(height, width) * rng.uniform(0.25, 1.0))
            y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            tile = cv2.resize(rgb[y:y + side, x:x + side], (TILE, TILE), interpolation=cv2.INTER_AREA)
            tiles.append(tile)
    array = np.stack(tiles).astype(np.float32) / 255.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous().to(device)


class SyntheticFaceSampler:
    """Draws :class:`SyntheticFaces` of a :class:`flamefit.fitting.scene.HeadScene` (orthographic).

    Args:
        scene: the head model in use, on the device that renders.
        resolution: crop side (pixels).
        backgrounds: from :func:`background_bank` (on the scene's device), or None for
            procedural backgrounds only.
        occluder_fraction: share of faces given an occluder.
        max_yaw: the widest yaw drawn (degrees); 60 % of faces are uniform in ±max_yaw, the
            rest near-frontal (normal, 20° spread), as photo collections are.
    """

    def __init__(self, scene, resolution: int = 224, backgrounds: torch.Tensor | None = None,
                 occluder_fraction: float = 0.25, max_yaw: float = 90.0):
        if scene.camera_type != "orthographic":
            raise ValueError("the image regressor predicts the orthographic camera; build the "
                             "scene with camera='orthographic'")
        self.scene = scene
        self.resolution = resolution
        self.backgrounds = backgrounds
        self.occluder_fraction = occluder_fraction
        self.max_yaw = max_yaw
        self.device = next(scene.buffers()).device

    # -- parameters ----------------------------------------------------------------------------
    def draw_parameters(self, batch: int, generator: torch.Generator) -> tuple[FitParameters, torch.Tensor]:
        """Parameters without the camera (set by :meth:`frame`), on the CPU, and the yaws (deg)."""
        flame = self.scene.flame

        def uniform(low: float, high: float, *size: int) -> torch.Tensor:
            return low + (high - low) * torch.rand(*size, generator=generator)

        params = self.scene.initial_parameters(batch, "cpu")
        params.shape[:] = torch.randn(params.shape.shape, generator=generator) * 0.9
        n_expression = params.expression.shape[1]
        if flame.expression_bounds is not None:  # sparse blendshape weights
            active = torch.rand(batch, n_expression, generator=generator) < 0.25
            params.expression[:] = active * uniform(0.0, 0.8, batch, n_expression)
        else:
            params.expression[:] = torch.randn(batch, n_expression, generator=generator) * 0.7
            params.expression[:, 20:] *= 0.3
        wide = torch.rand(batch, generator=generator) < 0.6
        yaw = torch.where(wide, uniform(-self.max_yaw, self.max_yaw, batch),
                          (torch.randn(batch, generator=generator) * 20).clamp(-self.max_yaw, self.max_yaw))
        pitch = uniform(-40, 40, batch) * torch.where(wide, 1.0, 0.5)
        roll = uniform(-25, 25, batch)
        from flamefit.fitting.landmark_regressor import axis_angle_from_rotation

        rotation = euler_rotation(torch.deg2rad(yaw), torch.deg2rad(pitch), torch.deg2rad(roll))
        params.pose[:, GLOBAL] = axis_angle_from_rotation(rotation)
        params.pose[:, JAW.start] = uniform(0.0, 0.35, batch) * (torch.rand(batch, generator=generator) < 0.6)
        params.texture[:] = torch.randn(params.texture.shape, generator=generator) * 0.9
        # light: tinted ambient, a directional part, a little of the second order
        ambient = uniform(0.45, 0.95, batch, 1) * uniform(0.85, 1.15, batch, 3)
        params.light.zero_()
        params.light[:, 0, :] = ambient / SH_CONSTANT_FACTORS[0]
        direction = F.normalize(torch.randn(batch, 3, generator=generator) + torch.tensor([0.0, 0.3, 0.8]), dim=1)
        strength = uniform(0.0, 0.6, batch, 1) * ambient
        params.light[:, 1:4, :] = direction[:, :, None] * strength[:, None, :]
        params.light[:, 4:, :] = torch.randn(batch, 5, 1, generator=generator) * 0.05 * ambient[:, None, :]
        return params, yaw

    def frame(self, params: FitParameters, generator: torch.Generator) -> torch.Tensor:
        """The crop camera ``(B, 3)`` ``[s, tx, ty]`` of the fit's crop rule around the model's
        68 landmarks at these parameters, jittered as a detector's box moves (normal, standard
        deviations 5 % in scale and 1.5 % of the crop side in shift)."""
        batch = params.pose.shape[0]
        with torch.no_grad():
            points = self.scene.landmarks_model(params.to(self.device))[..., :2].cpu()
        low, high = points.amin(dim=1), points.amax(dim=1)
        centre = (low + high) / 2
        side = DEFAULT_SCALE * (high - low).sum(dim=1) / 2  # model units
        scale = 2.0 / side * torch.exp(torch.randn(batch, generator=generator) * 0.05)
        shift = torch.randn(batch, 2, generator=generator) * 0.03 / scale[:, None]
        return torch.cat([scale[:, None], -centre + shift], dim=1)

    # -- images --------------------------------------------------------------------------------
    def sample(self, batch: int, generator: torch.Generator) -> SyntheticFaces:
        """Draw, frame, render, composite and augment ``batch`` faces."""
        params, yaw = self.draw_parameters(batch, generator)
        params.camera[:] = self.frame(params, generator)
        # every random number is drawn here, on the CPU, before the device work
        draws = self._augmentation_draws(batch, generator)
        params = params.to(self.device)
        with torch.no_grad():
            rendered = self.scene.render(params, self.resolution)
            background = self._backgrounds(draws)
            images = rendered.image + (1 - rendered.alpha) * background
            occluded = draws["occluded"].to(self.device)
            images = self._occlude(images, draws, occluded)
            images = self._augment(images, draws)
        return SyntheticFaces(images=images.clamp(0, 1), truth=params,
                              landmarks_px=rendered.landmarks_px, occluded=occluded,
                              yaw_deg=yaw.to(self.device))

    def _augmentation_draws(self, batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        def u(low: float, high: float, *size: int) -> torch.Tensor:
            return low + (high - low) * torch.rand(*size, generator=g)

        n_tiles = 0 if self.backgrounds is None else self.backgrounds.shape[0]
        return {
            "photo_background": (torch.rand(batch, generator=g) < 0.75) if n_tiles else torch.zeros(batch, dtype=torch.bool),
            "tile": torch.randint(0, max(n_tiles, 1), (batch,), generator=g),
            "tile_affine": torch.stack([u(0.5, 1.0, batch), u(-0.5, 0.5, batch), u(-0.5, 0.5, batch),
                                        (torch.rand(batch, generator=g) < 0.5).float()], dim=1),
            "flat": u(0.05, 0.95, batch, 3), "gradient": u(-0.3, 0.3, batch, 2, 3),
            "occluded": torch.rand(batch, generator=g) < self.occluder_fraction,
            "occluder": torch.stack([u(0.2, 0.8, batch), u(0.35, 0.95, batch), u(0.08, 0.3, batch),
                                     u(0.08, 0.3, batch), (torch.rand(batch, generator=g) < 0.5).float()], dim=1),
            "occluder_tile": torch.randint(0, max(n_tiles, 1), (batch,), generator=g),
            "occluder_flat": u(0.0, 1.0, batch, 3),
            "gain": u(0.7, 1.3, batch, 1) * u(0.9, 1.1, batch, 3), "contrast": u(0.7, 1.3, batch),
            "saturation": u(0.5, 1.3, batch), "gamma": u(0.8, 1.25, batch),
            "grey": torch.rand(batch, generator=g) < 0.08, "blur": torch.randint(0, 4, (batch,), generator=g),
            "noise": u(0.0, 0.03, batch),
            # the pixel noise is drawn on the device from this seed (a CPU draw of B x 3 x R x R
            # numbers and its copy would cost more than the render)
            "noise_seed": torch.randint(0, 2**62, (1,), generator=g),
        }

    def _grid(self, batch: int) -> torch.Tensor:
        line = torch.linspace(-1, 1, self.resolution, device=self.device)
        y, x = torch.meshgrid(line, line, indexing="ij")
        return torch.stack([x, y], dim=-1).expand(batch, -1, -1, -1)  # (B, R, R, 2)

    def _tiles(self, index: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
        """Background tiles ``index (B,)`` resampled by ``affine (B, 4)`` (zoom, x, y, flip)."""
        affine = affine.to(self.device)
        zoom, flip = affine[:, 0], 1 - 2 * affine[:, 3]
        grid = self._grid(len(index)).clone()
        grid[..., 0] *= (zoom * flip)[:, None, None]
        grid[..., 1] *= zoom[:, None, None]
        grid = grid + (affine[:, 1:3] * (1 - zoom[:, None]))[:, None, None, :]
        tiles = self.backgrounds[index.to(self.device)]
        return F.grid_sample(tiles, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _backgrounds(self, draws: dict) -> torch.Tensor:
        batch = draws["flat"].shape[0]
        grid = self._grid(batch)
        gradient = draws["gradient"].to(self.device)
        flat = self._procedural(draws["flat"], gradient, grid)
        if self.backgrounds is None:
            return flat
        photo = self._tiles(draws["tile"], draws["tile_affine"])
        use = draws["photo_background"].to(self.device)[:, None, None, None]
        return torch.where(use, photo, flat)

    def _procedural(self, flat: torch.Tensor, gradient: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """A flat colour plus a linear gradient: ``(B, 3, R, R)``."""
        ramp = grid[..., 0, None] * gradient[:, None, None, 0, :] + grid[..., 1, None] * gradient[:, None, None, 1, :]
        return (flat.to(self.device)[:, None, None, :] + ramp).permute(0, 3, 1, 2).clamp(0, 1)

    def _occlude(self, images: torch.Tensor, draws: dict, occluded: torch.Tensor) -> torch.Tensor:
        """An ellipse (a hand) or a bar (a microphone) over the lower or middle face."""
        batch = images.shape[0]
        grid = (self._grid(batch) + 1) / 2  # [0, 1] across the crop
        cx, cy, rx, ry, bar = draws["occluder"].to(self.device).unbind(dim=1)
        dx = (grid[..., 0] - cx[:, None, None]) / rx[:, None, None]
        dy = (grid[..., 1] - cy[:, None, None]) / ry[:, None, None]
        ellipse = dx.pow(2) + dy.pow(2) < 1
        rectangle = (dx.abs() < 1) & (dy.abs() < 2.5)
        shape = torch.where(bar[:, None, None] > 0.5, rectangle, ellipse) & occluded[:, None, None]
        if self.backgrounds is not None:
            fill = self._tiles(draws["occluder_tile"], draws["tile_affine"].flip(0))
        else:
            fill = draws["occluder_flat"].to(self.device)[:, :, None, None].expand_as(images)
        return torch.where(shape[:, None], fill, images)

    def _augment(self, images: torch.Tensor, draws: dict) -> torch.Tensor:
        d = {k: v.to(self.device) for k, v in draws.items()}
        grey = images.mean(dim=1, keepdim=True)
        images = grey + (images - grey) * d["saturation"][:, None, None, None]
        images = torch.where(d["grey"][:, None, None, None], grey.expand_as(images), images)
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        images = mean + (images - mean) * d["contrast"][:, None, None, None]
        images = (images * d["gain"][:, :, None, None]).clamp(0, 1) ** d["gamma"][:, None, None, None]
        for level in (1, 2, 3):  # box blur of 3, 5, 7 pixels on a quarter each
            chosen = d["blur"] == level
            if bool(chosen.any()):
                size = 2 * level + 1
                blurred = F.avg_pool2d(F.pad(images, [level] * 4, mode="replicate"), size, 1)
                images = torch.where(chosen[:, None, None, None], blurred, images)
        field = torch.randn(images.shape, device=self.device,
                            generator=torch.Generator(device=self.device).manual_seed(int(draws["noise_seed"])))
        return images + field * d["noise"][:, None, None, None]

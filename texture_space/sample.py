"""``flamefit sample-texture-space FILE --out DIR``: look at an albedo space.

Writes, for the first ``n_components`` components ``k``:

* ``uv_mean.png`` and ``uv_pc{k}_minus.png`` / ``uv_pc{k}_plus.png``: the mean and
  ``mean -/+ sigma * basis_k`` as UV images (row 0 = top = v 1);
* ``components.png``: a sheet, one row per component, of ``-sigma``, mean, ``+sigma`` rendered on
  the head (the model in use, :func:`flamefit.flame.selection.select_model`; neutral shape, frontal,
  the fixed grey light of :func:`flamefit.renderer.render.shape_light`) next to the UV images;
* ``samples.png``: renders of ``n_samples`` random albedos ``mean + basis @ c``, ``c ~ N(0, I)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _render_albedos(scene, albedos: torch.Tensor, resolution: int) -> np.ndarray:
    """Render ``albedos (B, 3, T, T)`` on the neutral head, frontal, with a fixed grey light;
    returns ``(B, R, R, 3)`` uint8."""
    from flamefit.fitting.landmark_pose import camera_from_landmarks
    from flamefit.renderer.render import render_textured, shape_light
    from flamefit.renderer.visualize import to_uint8

    batch = albedos.shape[0]
    params = scene.initial_parameters(batch, albedos.device)
    with torch.no_grad():
        # Frame the head: its inner landmarks span ~45 % of the image, a little below centre.
        landmarks = scene.landmarks_px(params, resolution)
        spread = (landmarks[:, :, 0].amax(dim=1) - landmarks[:, :, 0].amin(dim=1))[:, None, None]
        centre = torch.tensor([resolution / 2.0, resolution * 0.55])
        target = (landmarks - landmarks.mean(dim=1, keepdim=True)) * 0.45 * resolution / spread + centre
        params.camera.copy_(camera_from_landmarks(scene, params, target, resolution))
        vertices = scene.flame(shape=params.shape, expression=params.expression, pose=params.pose).vertices
        rendered = render_textured(
            vertices, scene.camera(params, resolution), scene.flame.faces, scene.vt, scene.ft,
            albedos.clamp(0, 1), shape_light(batch), background=1.0, backend=scene.backend,
        )
    return np.stack([to_uint8(image.permute(1, 2, 0).clamp(0, 1).numpy()) for image in rendered.image])


def sample_texture_space(
    space_file: str | Path,
    out_dir: str | Path,
    *,
    n_components: int = 5,
    sigma: float = 3.0,
    n_samples: int = 12,
    render_resolution: int = 256,
    flame_dir: str | Path | None = None,
    open_model: bool = False,
    seed: int = 0,
) -> list[Path]:
    """Write UV images and renders of a texture space's mean, components and random samples.

    Args:
        space_file: a texture space (``FLAME_texture.npz`` layout, or BFM's).
        out_dir: output folder.
        n_components: how many leading components to show.
        sigma: the offset along each component, in standard deviations.
        n_samples: random samples on ``samples.png``.
        render_resolution: side of each render.
        flame_dir, open_model: the head model to render on (:func:`flamefit.flame.selection.select_model`);
            its UV layout must be the space's.
        seed: seed of the random samples.

    Returns:
        The files written.

    Raises:
        ModelFileError: unreadable space file.
        ValueError: the space's ``vt``/``ft`` do not match the model's UV layout.
    """
    from flamefit.fitting.albedo import AlbedoModel
    from flamefit.utils import write_image
    from flamefit.fitting.scene import HeadScene
    from flamefit.flame.selection import select_model
    from flamefit.flame.texture_space_io import load_texture_space
    from flamefit.renderer.visualize import make_sheet, to_uint8

    out_dir = Path(out_dir)
    space = load_texture_space(space_file)
    files = select_model(flame_dir, open_model=open_model)
    scene = HeadScene.from_model_files(files, n_shape=1, n_expression=1, n_texture=1)
    AlbedoModel.check_uv_layout(space, scene.ft, space_file, files.describe())
    k = min(n_components, space.n_components)
    albedo = AlbedoModel.from_texture_space(space, None, space.resolution)
    scene.albedo = albedo
    written = []

    def save(name: str, image: np.ndarray) -> None:
        written.append(write_image(out_dir / name, image))

    mean = albedo.mean  # (1, 3, T, T)
    stds = torch.zeros(0, 3, *mean.shape[-2:])
    if k:
        offsets = sigma * albedo.basis[:k]  # (k, 3, T, T)
        stds = torch.cat([mean - offsets, mean + offsets])  # minus 0..k-1, plus 0..k-1
    uv = lambda t: to_uint8(t.permute(1, 2, 0).clamp(0, 1).numpy())  # noqa: E731
    save("uv_mean.png", uv(mean[0]))
    for index in range(k):
        save(f"uv_pc{index + 1}_minus.png", uv(stds[index]))
        save(f"uv_pc{index + 1}_plus.png", uv(stds[k + index]))

    renders = _render_albedos(scene, torch.cat([mean, stds]), render_resolution)
    blank = np.full_like(renders[0], 255)
    tiles, labels = [renders[0], uv(mean[0]), blank, blank, blank], ["mean", "mean (UV)", "", "", ""]
    for index in range(k):
        tiles += [renders[1 + index], renders[0], renders[1 + k + index], uv(stds[index]), uv(stds[k + index])]
        labels += [f"pc{index + 1} -{sigma:g} sd", "mean", f"pc{index + 1} +{sigma:g} sd", "UV -", "UV +"]
    save("components.png", make_sheet(tiles, labels, columns=5))

    generator = torch.Generator().manual_seed(seed)
    coefficients = torch.randn(n_samples, albedo.n_components, generator=generator)
    samples = _render_albedos(scene, albedo(coefficients), render_resolution)
    save("samples.png", make_sheet(list(samples), [f"sample {i + 1}" for i in range(n_samples)],
                                   columns=min(6, n_samples)))
    return written

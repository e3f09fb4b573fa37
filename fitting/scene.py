"""What the fit renders: the head model, its albedo model, UV layout, face region and camera.

:class:`HeadScene` turns :class:`flamefit.fitting.parameters.FitParameters` into landmarks and images
through :class:`flamefit.flame.FLAME` and :func:`flamefit.renderer.render.render_textured`. The
camera is a :class:`flamefit.renderer.camera_models.CameraModel`, which says what the camera
parameters mean:

* ``"orthographic"`` (default): DECA's ``[s, tx, ty]`` (:class:`flamefit.renderer.camera_models.OrthographicCameraModel`);
* ``"perspective"``: a pinhole with a fixed field of view in front of the face; the camera
  parameters are the translation ``[tx, ty, tz]`` of the head in OpenCV camera space (metres),
  rotation being the global pose (:class:`flamefit.renderer.camera_models.PerspectiveCameraModel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flamefit.fitting.albedo import AlbedoModel
from flamefit.fitting.parameters import FitParameters
from flamefit.flame.flame_layer import FLAME
from flamefit.flame.selection import ModelFiles
from flamefit.renderer.camera_models import CameraModel, camera_model
from flamefit.renderer.render import render_textured


@dataclass
class SceneRender:
    """One render of the scene (crop resolution ``R``).

    Attributes:
        image: ``(B, 3, R, R)`` lit albedo on covered pixels, 0 elsewhere.
        alpha: ``(B, 1, R, R)`` coverage.
        face_mask: ``(B, 1, R, R)`` coverage of the face region (the photometric term's area).
        landmarks_px: ``(B, 68, 2)`` the 68 fitting landmarks in crop pixels.
        vertices: ``(B, V, 3)`` posed vertices, model space.
        dense_px: ``(B, K, 2)`` the embedded MediaPipe points in crop pixels, or None when the
            scene has no dense embedding (:meth:`HeadScene.set_dense_embedding`).
    """

    image: torch.Tensor
    alpha: torch.Tensor
    face_mask: torch.Tensor
    landmarks_px: torch.Tensor
    vertices: torch.Tensor
    dense_px: torch.Tensor | None = None


class HeadScene(nn.Module):
    """Head model + albedo model + UV layout + face region, rendered with one camera type.

    Buffers:
        vt: ``(T, 2)`` texture coordinates (OBJ convention).
        ft: ``(F, 3)`` texture-coordinate indices.
        face_region: ``(V,)`` bool, vertices of the photometric region.
    """

    def __init__(
        self,
        flame: FLAME,
        albedo: AlbedoModel,
        vt: np.ndarray,
        ft: np.ndarray,
        face_region: np.ndarray | None = None,
        camera: str | CameraModel = "orthographic",
        backend: str = "torch",
        description: str = "",
        cull_backfaces: bool = True,
    ):
        super().__init__()
        self.camera_model = camera_model(camera)
        self.flame = flame
        self.albedo = albedo
        self.register_buffer("vt", torch.as_tensor(vt, dtype=torch.float32))
        self.register_buffer("ft", torch.as_tensor(ft, dtype=torch.long))
        n_vertices = flame.v_template.shape[0]
        region = torch.ones(n_vertices, dtype=torch.bool)
        if face_region is not None:
            region = torch.zeros(n_vertices, dtype=torch.bool)
            region[torch.as_tensor(face_region, dtype=torch.long)] = True
        self.register_buffer("face_region", region)
        self.backend = backend
        self.description = description
        self.model_file: Path | None = None
        self.dense_embedding = None
        # The head is a closed surface seen from outside: back faces are never visible, and
        # skipping them saves ~10 % of the render time.
        self.cull_backfaces = cull_backfaces

    @classmethod
    def from_model_files(
        cls,
        files: ModelFiles,
        n_shape: int | None = 100,
        n_expression: int | None = 50,
        n_texture: int | None = 50,
        texture_resolution: int = 256,
        camera: str | CameraModel = "orthographic",
        texture_space: str | Path | None = None,
        backend: str = "torch",
    ) -> "HeadScene":
        """Build the scene from a model folder (FLAME or the demo head).

        Args:
            files: from :func:`flamefit.flame.select_model`.
            n_shape, n_expression, n_texture: components to fit (capped at what the files have;
                a model of named blendshapes, such as the open model's ARKit set, fits all of them).
            texture_resolution: UV resolution the albedo is fitted at.
            camera: a name of :data:`flamefit.renderer.choices.CAMERA_MODELS`, or a
                :class:`flamefit.renderer.camera_models.CameraModel` (e.g. a perspective one with
                another field of view).
            texture_space: an albedo space to use instead of the folder's (e.g. one built by
                ``flamefit build-texture-space``).
        """
        from flamefit.flame.errors import ModelFileError
        from flamefit.flame.model_file import load_flame_model
        from flamefit.flame.landmark_embedding import load_landmark_embedding
        from flamefit.flame.texture_space_io import load_texture_space
        from flamefit.flame.uv_template import load_uv_template
        from flamefit.flame.vertex_masks import load_vertex_masks

        model = load_flame_model(files.model)
        if files.landmarks is None:
            raise ModelFileError(files.folder, "no landmark embedding (landmark_embedding.npy): "
                                 "fitting needs it; get it from DECA's data folder (see data/README.md)")
        if files.template is None:
            raise ModelFileError(files.folder, "no UV template (head_template_mesh.obj): fitting "
                                 "needs it for the albedo; see data/README.md")
        landmarks = load_landmark_embedding(files.landmarks, n_faces=model.n_faces)
        layer = FLAME(
            model, landmarks,
            n_shape=None if n_shape is None else min(n_shape, model.n_shape),
            # named blendshapes (ICT's ARKit set) are not ordered by variance: fit all of them
            n_expression=None if n_expression is None or "expression_names" in model.extras
            else min(n_expression, model.n_expression),
        )
        uv = load_uv_template(files.template, n_vertices=model.n_vertices, faces=model.faces)
        space_path = texture_space or files.texture
        if space_path is not None:
            space = load_texture_space(space_path)
            AlbedoModel.check_uv_layout(space, uv.ft, space_path, files.describe())
            albedo = AlbedoModel.from_texture_space(space, n_texture,
                                                    texture_resolution)
        else:
            albedo = AlbedoModel.constant(texture_resolution)
        face_region = None
        if files.masks is not None:
            masks = load_vertex_masks(files.masks, n_vertices=model.n_vertices)
            face_region = masks.get("face")
        scene = cls(layer, albedo, uv.vt, uv.ft, face_region, camera=camera, backend=backend,
                    description=files.describe())
        scene.model_file = Path(files.model)
        return scene

    # -- dense landmarks -----------------------------------------------------------------------
    def set_dense_embedding(self, embedding) -> None:
        """Use a :class:`flamefit.fitting.dense_embedding.DenseEmbedding` (MediaPipe's points on
        this model) for :attr:`SceneRender.dense_px` and :meth:`dense_px`; None removes it.

        Buffers: ``dense_faces (K,)``, ``dense_bary (K, 3)``, ``dense_offset (K,)`` (metres along
        the triangle's normal), ``dense_ids (K,)`` (into the 478),
        ``dense_regions (K,)`` (into :data:`flamefit.fitting.dense_embedding.REGIONS`),
        ``dense_spread (K,)`` (px of a 224² render)."""
        self.dense_embedding = embedding
        device = self.vt.device
        if embedding is None:
            for name in ("dense_faces", "dense_bary", "dense_offset", "dense_ids", "dense_regions", "dense_spread"):
                self._buffers.pop(name, None)
            return
        self.register_buffer("dense_faces", torch.as_tensor(embedding.faces, dtype=torch.long, device=device))
        self.register_buffer("dense_bary", torch.as_tensor(embedding.bary, dtype=torch.float32, device=device))
        self.register_buffer("dense_offset", torch.as_tensor(embedding.offset, dtype=torch.float32, device=device))
        self.register_buffer("dense_ids", torch.as_tensor(embedding.point_ids, dtype=torch.long, device=device))
        self.register_buffer("dense_regions", torch.as_tensor(embedding.regions, dtype=torch.long, device=device))
        spread = embedding.spread_px[embedding.point_ids]
        self.register_buffer("dense_spread", torch.as_tensor(spread, dtype=torch.float32, device=device))

    def dense_points(self, vertices: torch.Tensor) -> torch.Tensor:
        """``(B, K, 3)`` the embedded dense points on posed ``vertices (B, V, 3)``, model space."""
        from flamefit.fitting.dense_embedding import embedded_points

        return embedded_points(vertices, self.flame.faces, self.dense_faces, self.dense_bary, self.dense_offset)

    def dense_px(self, params: FitParameters, resolution: int) -> torch.Tensor:
        """``(B, K, 2)`` the embedded dense points in crop pixels."""
        vertices = self.flame(shape=params.shape, expression=params.expression, pose=params.pose).vertices
        return self.camera(params, resolution).project(self.dense_points(vertices))[..., :2]

    # -- cameras -------------------------------------------------------------------------------
    @property
    def camera_type(self) -> str:
        """The camera model's name (one of :data:`flamefit.renderer.choices.CAMERA_MODELS`), as
        saved with a fit."""
        return self.camera_model.name

    def initial_camera(self, batch: int, device) -> torch.Tensor:
        """A neutral camera ``(B, n_params)``: the head filling the crop, centred."""
        return self.camera_model.initial(batch, device)

    def camera(self, params: FitParameters, resolution: int, zoom: float = 1.0):
        """The renderer camera for these parameters at crop resolution ``resolution``.

        ``zoom`` scales the image about the crop centre (0.5: a frame twice as wide)."""
        return self.camera_model.camera(params.camera, resolution, zoom)

    def camera_step_scale(self, params: FitParameters, resolution: int) -> torch.Tensor:
        """``(B, n_params)`` units in which the optimiser's steps on the camera are even (a step
        of 1 = a shift of half the crop or a doubling of the face's size;
        :meth:`flamefit.renderer.camera_models.CameraModel.step_scale`)."""
        return self.camera_model.step_scale(params.camera.detach(), resolution)

    def camera_from_similarity(self, scale: torch.Tensor, shift: torch.Tensor, resolution: int) -> torch.Tensor:
        """Camera parameters ``(B, n_params)`` that map model ``(x, y)`` (near the origin) to crop
        pixels ``px = R/2 + R/2 * scale * (x + shift_x)``, ``py = R/2 - R/2 * scale * (y + shift_y)``."""
        return self.camera_model.from_similarity(scale, shift, resolution)

    @staticmethod
    def centred_coordinates(points_px: torch.Tensor, resolution: int) -> torch.Tensor:
        """Crop pixels -> ``(u, w)`` with ``u`` right and ``w`` up, ``[-1, 1]`` across the crop."""
        half = resolution / 2.0
        return torch.stack([(points_px[..., 0] - half) / half, (half - points_px[..., 1]) / half], dim=-1)

    # -- model ---------------------------------------------------------------------------------
    def initial_parameters(self, batch: int, device) -> FitParameters:
        return FitParameters.zeros(
            batch, self.flame.n_shape, self.flame.n_expression, self.albedo.n_components,
            camera=self.initial_camera(1, device), device=device,
        )

    def landmarks_model(self, params: FitParameters) -> torch.Tensor:
        """``(B, 68, 3)`` the fitting landmarks in model space for these parameters."""
        return self.flame(shape=params.shape, expression=params.expression, pose=params.pose).landmarks

    def landmarks_px(self, params: FitParameters, resolution: int) -> torch.Tensor:
        """``(B, 68, 2)`` the fitting landmarks in crop pixels."""
        return self.camera(params, resolution).project(self.landmarks_model(params))[..., :2]

    def render(
        self, params: FitParameters, resolution: int, texture_offset: torch.Tensor | None = None,
        zoom: float = 1.0,
    ) -> SceneRender:
        """Render the crop: lit albedo, coverage, face region and landmarks (``zoom`` as in
        :meth:`camera`)."""
        out = self.flame(shape=params.shape, expression=params.expression, pose=params.pose)
        camera = self.camera(params, resolution, zoom)
        texture = self.albedo(params.texture)
        if texture_offset is not None:
            texture = texture + texture_offset
        rendered = render_textured(
            out.vertices, camera, self.flame.faces, self.vt, self.ft, texture, params.light,
            vertex_masks={"face": self.face_region}, backend=self.backend,
            cull_backfaces=self.cull_backfaces,
        )
        face_mask = rendered.alpha * rendered.region_masks["face"].to(rendered.alpha.dtype)
        return SceneRender(
            image=rendered.image,
            alpha=rendered.alpha,
            face_mask=face_mask,
            landmarks_px=camera.project(out.landmarks)[..., :2],
            vertices=out.vertices,
            dense_px=None if self.dense_embedding is None
            else camera.project(self.dense_points(out.vertices))[..., :2],
        )

"""A small network from 68 detected landmarks to a starting point for the fit.

It maps the iBUG 68 points of a face, normalised to the fit's crop (``[-1, 1]`` across it, x
right, y down; see :mod:`flamefit.fitting.crop`), to the global head rotation, the jaw, the
expression, the leading identity coefficients and the orthographic camera ``[s, tx, ty]`` of
that crop (:class:`flamefit.renderer.camera_models.OrthographicCameraModel`: the normalised
image point of a model point ``(x, y)`` is ``(s (x + tx), -s (y + ty))``).

It is trained only on synthetic projections of the model in use (:func:`training_batch`):
parameters drawn from the model's priors, yaw up to ±90°, pitch ±45°, roll ±30°, the model's
yaw-dependent contour, detector-like noise and missing points; nothing is rendered, so a model
trains in minutes on two CPU cores (:func:`train`). The network: the 68 points and a
present/missing flag per point -> three 384-wide layers -> a 6-D rotation, jaw axis-angle,
expression, identity and camera.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from flamefit.flame import landmark_sets as ibug
from flamefit.flame.pose_layout import GLOBAL, JAW, N_POSE

#: 2: trained on detector-like points (:class:`DetectorResiduals`); the spec names the detector.
REGRESSOR_VERSION = 2
#: Crop box around the landmarks, as the fit makes it (:data:`flamefit.fitting.crop.DEFAULT_SCALE`).
CROP_SCALE = 1.25
#: Identity coefficients predicted (the leading ones; landmarks say little about the rest).
N_SHAPE_PREDICTED = 10
#: Wall-clock budget of :func:`train_for_model` (calibration and training), minutes.
TRAINING_MINUTES = 9.5
#: Share of training faces given a calibrated detector's error (the rest get generic noise).
DETECTOR_SHARE = 0.8


@dataclass
class RegressorSpec:
    """What a regressor was built for.

    Attributes:
        n_shape: identity coefficients predicted (the model's leading ones).
        n_expression: expression coefficients predicted (all of a blendshape model's).
        expression_bounds: the model's expression range, or None (unbounded PCA).
        hidden: width of the hidden layers.
        model_sha256: the model file it was trained for.
        detector: the detector whose errors it was trained with (:class:`DetectorResiduals`),
            or ``""`` (generic noise only).
    """

    n_shape: int
    n_expression: int
    expression_bounds: tuple[float, float] | None
    hidden: int = 384
    model_sha256: str = ""
    detector: str = ""


class LandmarkRegressor(nn.Module):
    """``(B, 68, 2)`` crop-normalised landmarks (NaN where missing) -> fit parameters."""

    def __init__(self, spec: RegressorSpec):
        super().__init__()
        self.spec = spec
        width = spec.hidden
        self.n_out = 6 + 3 + spec.n_expression + spec.n_shape + 3
        self.net = nn.Sequential(
            nn.Linear(ibug.N_LANDMARKS * 3, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, self.n_out),
        )

    def forward(self, landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: ``landmarks (B, 68, 2)`` crop-normalised, NaN rows for missing points.

        Returns:
            ``rotation (B, 3, 3)`` global, ``jaw (B, 3)`` axis-angle, ``expression (B, E)``,
            ``shape (B, S)``, ``camera (B, 3)`` ``[s, tx, ty]`` of the crop.
        """
        present = torch.isfinite(landmarks).all(dim=-1, keepdim=True)
        features = torch.cat([torch.where(present, landmarks, torch.zeros_like(landmarks)),
                              present.to(landmarks.dtype)], dim=-1).flatten(1)
        out = self.net(features)
        e, s = self.spec.n_expression, self.spec.n_shape
        rotation = rotation_from_6d(out[:, :6])
        jaw = out[:, 6:9] * 0.1
        expression = out[:, 9:9 + e]
        if self.spec.expression_bounds is not None:
            low, high = self.spec.expression_bounds
            expression = low + (high - low) * torch.sigmoid(expression - 2.0)
        shape = out[:, 9 + e:9 + e + s]
        camera = out[:, -3:]
        camera = torch.cat([torch.exp(camera[:, :1] + math.log(8.0)), camera[:, 1:] * 0.05], dim=1)
        return {"rotation": rotation, "jaw": jaw, "expression": expression, "shape": shape,
                "camera": camera}


def rotation_from_6d(six: torch.Tensor) -> torch.Tensor:
    """``(B, 6)`` two 3-vectors -> ``(B, 3, 3)`` rotation (Gram-Schmidt; the columns are the
    first vector, the orthogonalised second and their cross product)."""
    a = nn.functional.normalize(six[:, :3], dim=1)
    b = six[:, 3:] - (a * six[:, 3:]).sum(dim=1, keepdim=True) * a
    b = nn.functional.normalize(b, dim=1)
    return torch.stack([a, b, torch.cross(a, b, dim=1)], dim=2)


def axis_angle_from_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """``(B, 3, 3)`` rotations -> ``(B, 3)`` axis-angle (angles up to pi)."""
    cos = ((rotation.diagonal(dim1=1, dim2=2).sum(dim=1) - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cos)
    axis = torch.stack([rotation[:, 2, 1] - rotation[:, 1, 2], rotation[:, 0, 2] - rotation[:, 2, 0],
                        rotation[:, 1, 0] - rotation[:, 0, 1]], dim=1)
    small = angle < 1e-4
    scale = torch.where(small, torch.full_like(angle, 0.5), angle / (2 * torch.sin(angle).clamp_min(1e-12)))
    return axis * scale[:, None]


def crop_normalise(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fit's crop around ``points (B, 68, 2)`` (normalised image coordinates, NaN for
    missing): box of the present points x 1.25, square. Returns the points in that crop's
    ``[-1, 1]`` coordinates, the crop centre ``(B, 2)`` and half side ``(B,)``."""
    present = torch.isfinite(points).all(dim=-1)
    big = torch.finfo(points.dtype).max
    low = torch.where(present[..., None], points, torch.full_like(points, big)).amin(dim=1)
    high = torch.where(present[..., None], points, torch.full_like(points, -big)).amax(dim=1)
    centre = (low + high) / 2
    half = (high - low).amax(dim=1) / 2 * CROP_SCALE
    return (points - centre[:, None]) / half[:, None, None], centre, half


class LandmarkLayer(nn.Module):
    """The 68 fitting landmarks of a :class:`flamefit.flame.flame_layer.FLAME` layer, computed
    from the few hundred vertices they lie on (training draws thousands of faces per second).

    The joints, which depend on every vertex, ride along as extra "vertices" whose rest
    positions and blendshapes are the joint regressor applied to the model's: the same linear
    map, so the joints (and the landmarks) equal the full layer's.
    """

    def __init__(self, flame):
        super().__init__()
        self.flame = flame
        self.n_shape, self.n_expression = flame.n_shape, flame.n_expression
        self.expression_bounds = flame.expression_bounds
        used = torch.cat([flame.static_faces.reshape(-1), flame.dynamic_faces.reshape(-1),
                          flame.full_faces.reshape(-1)]).unique()
        vertex_ids = flame.faces[used].reshape(-1).unique()
        remap = torch.full((flame.v_template.shape[0],), -1, dtype=torch.long)
        remap[vertex_ids] = torch.arange(len(vertex_ids))
        regressor = flame.j_regressor  # (J, V)
        n_joints, n_kept = regressor.shape[0], len(vertex_ids)
        self.register_buffer("faces", remap[flame.faces].clamp_min(0))  # rows of unused faces are dummies
        self.register_buffer("v_template", torch.cat([flame.v_template[vertex_ids], regressor @ flame.v_template]))
        self.register_buffer("directions", torch.cat([flame.directions[vertex_ids],
                                                      torch.einsum("jv,vck->jck", regressor, flame.directions)]))
        self.register_buffer("posedirs", torch.cat([flame.posedirs[vertex_ids],
                                                    flame.posedirs.new_zeros(n_joints, *flame.posedirs.shape[1:])]))
        self.register_buffer("weights", torch.cat([flame.weights[vertex_ids], flame.weights.new_zeros(n_joints, n_joints)]))
        j_regressor = regressor.new_zeros(n_joints, n_kept + n_joints)
        j_regressor[:, n_kept:] = torch.eye(n_joints)
        self.register_buffer("j_regressor", j_regressor)

    def forward(self, shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor):
        """Like :meth:`FLAME.forward`, returning an object whose ``landmarks`` is ``(B, 68, 3)``."""
        from types import SimpleNamespace

        from flamefit.flame.flame_layer import points_on_mesh
        from flamefit.flame.lbs import lbs

        batch = pose.shape[0]
        kwargs = {"dtype": self.v_template.dtype, "device": self.v_template.device}
        shape = self.flame._pad(shape, self.n_shape, batch, "shape", kwargs)
        expression = self.flame._pad(expression, self.n_expression, batch, "expression", kwargs)
        vertices, _ = lbs(torch.cat([shape, expression], dim=1), pose.to(**kwargs), self.v_template,
                          self.directions, self.posedirs, self.j_regressor, self.flame.parents, self.weights)
        rows = self.flame.contour_rows(pose)
        face_index = torch.cat([self.flame.dynamic_faces[rows], self.flame.static_faces.expand(batch, -1)], dim=1)
        bary = torch.cat([self.flame.dynamic_bary[rows], self.flame.static_bary.expand(batch, -1, -1)], dim=1)
        return SimpleNamespace(landmarks=points_on_mesh(vertices, self.faces, face_index, bary))


@dataclass
class TrainingBatch:
    """Synthetic inputs and truth: ``landmarks (B, 68, 2)`` crop-normalised with noise and NaN
    for missing points, ``clean (B, 68, 2)`` the same without noise or gaps, and the truth
    ``rotation (B, 3, 3)``, ``pose (B, 15)``, ``expression``, ``shape (B, S_all)``,
    ``camera (B, 3)`` of the crop."""

    landmarks: torch.Tensor
    clean: torch.Tensor
    rotation: torch.Tensor
    pose: torch.Tensor
    expression: torch.Tensor
    shape: torch.Tensor
    camera: torch.Tensor


def _euler_rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``R = R_y(yaw) R_x(pitch) R_z(roll)`` (radians) -> ``(B, 3, 3)``."""
    def about(axis: int, angle: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(angle), torch.sin(angle)
        m = torch.zeros(angle.shape[0], 3, 3)
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        m[:, axis, axis] = 1
        m[:, i, i], m[:, j, j], m[:, i, j], m[:, j, i] = c, c, -s, s
        return m
    return about(1, yaw) @ about(0, pitch) @ about(2, roll)


@dataclass
class DetectorResiduals:
    """How a detector's 68 points differ from the model's own on renders of the model.

    Attributes:
        detector: the detector's name (``"mediapipe"``, ...).
        angles: ``(K, 3)`` yaw, pitch, roll (degrees, ``R = R_y R_x R_z``) of each render.
        residuals: ``(K, 68, 2)`` detected minus projected points, image axes (x right, y
            down), in units of the half side of the points' crop box (:func:`crop_normalise`).

    A detector does not find the model's landmarks: its contour follows the outline it sees, its
    points drift at steep yaw, it guesses behind an occluder. Training adds the residual of a
    calibration render of a similar pose (:func:`training_batch`), so the regressor learns from
    points that look like the detector's (:func:`calibrate_detector`).
    """

    detector: str
    angles: np.ndarray
    residuals: np.ndarray


def calibrate_detector(scene, count: int = 1000, seed: int = 1234, detector: str = "mediapipe",
                       size: int = 384, progress: Callable[[int, int], None] | None = None,
                       seconds: float | None = None) -> DetectorResiduals:
    """Render ``count`` faces of ``scene``'s model (the training's pose ranges, random identity,
    expression, albedo and light, a quarter with a flat patch over the mouth or an eye), run
    ``detector`` on them and keep its residuals; renders where it finds no face are skipped.

    Args:
        scene: a :class:`flamefit.fitting.scene.HeadScene` (any device; renders at ``size``²).
        progress: called with (done, count) after each render.
        seconds: stop rendering after this long (the renders done so far are kept).
    """
    from flamefit.fitting.detect import detect_face
    from flamefit.fitting.synthetic import random_parameters
    from flamefit.flame.pose_layout import GLOBAL as GLOBAL_POSE

    generator = torch.Generator().manual_seed(seed)
    device = next(scene.buffers()).device
    truth = random_parameters(scene, count, generator, spread=0.8)
    yaw = -90 + 180 * torch.rand(count, generator=generator)
    pitch = -45 + 90 * torch.rand(count, generator=generator)
    roll = -30 + 60 * torch.rand(count, generator=generator)
    truth.pose[:, GLOBAL_POSE] = axis_angle_from_rotation(
        _euler_rotation(torch.deg2rad(yaw), torch.deg2rad(pitch), torch.deg2rad(roll)))
    truth.camera[:, 0] *= 0.55  # room to turn
    occluder = torch.rand(count, 4, generator=generator)
    angles, residuals = [], []
    chunk, images, points = 16, None, None
    started = time.time()
    for index in range(count):
        if seconds is not None and index % chunk == 0 and time.time() - started > seconds:
            break
        if index % chunk == 0:  # render a few at once (much cheaper per face)
            part = slice(index, min(count, index + chunk))
            some = type(truth)(**{k: v[part].to(device) for k, v in truth.tensors().items()})
            with torch.no_grad():
                rendered = scene.render(some, size)
            backdrop = 0.3 + 0.4 * occluder[part, 3].to(device)[:, None, None, None]
            images = (rendered.image + (1 - rendered.alpha) * backdrop).permute(0, 2, 3, 1).cpu().numpy()
            points = (rendered.landmarks_px - 0.5).cpu().numpy()
        image, true_points = images[index % chunk], points[index % chunk]
        if index % 4 == 1:
            region = (ibug.MOUTH, ibug.RIGHT_EYE, ibug.LEFT_EYE)[int(occluder[index, 0] * 3) % 3]
            low = np.floor(true_points[region].min(axis=0) - size / 50).astype(int).clip(0, size)
            high = np.ceil(true_points[region].max(axis=0) + size / 40).astype(int).clip(0, size)
            image[low[1]:high[1], low[0]:high[0]] = (0.55 + 0.3 * occluder[index, 1],
                                                    0.45 + 0.2 * occluder[index, 2], 0.4)
        rgb = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        try:
            found = detect_face(rgb, detector=detector)
        except Exception:  # noqa: BLE001 - no face at this pose: nothing to learn from it
            found = None
        if found is not None:
            half = np.ptp(true_points, axis=0).max() / 2 * CROP_SCALE
            angles.append((float(yaw[index]), float(pitch[index]), float(roll[index])))
            residuals.append((found.landmarks - true_points) / half)
        if progress is not None:
            progress(index + 1, count)
    if not residuals:
        raise RuntimeError(f"the {detector} detector found no face in {count} renders")
    return DetectorResiduals(detector, np.asarray(angles, np.float32), np.asarray(residuals, np.float32))


def _detector_like(image: torch.Tensor, degrees: torch.Tensor, residuals: DetectorResiduals,
                   generator: torch.Generator, neighbours: int = 8) -> torch.Tensor:
    """``image (B, 68, 2)`` plus, per face, the residual of one of the ``neighbours``
    calibration renders nearest in pose (``degrees (B, 3)``), scaled to the face's box."""
    angles = torch.as_tensor(residuals.angles)
    weights = torch.tensor([1.0, 1.0, 0.5])
    distance = torch.cdist(degrees * weights, angles * weights)  # (B, K)
    nearest = distance.topk(min(neighbours, angles.shape[0]), dim=1, largest=False).indices
    pick = torch.randint(0, nearest.shape[1], (image.shape[0], 1), generator=generator)
    chosen = torch.as_tensor(residuals.residuals)[nearest.gather(1, pick)[:, 0]]  # (B, 68, 2)
    half = (image.amax(dim=1) - image.amin(dim=1)).amax(dim=1) / 2 * CROP_SCALE
    return image + chosen * half[:, None, None]


def training_batch(flame, batch: int, generator: torch.Generator,
                   residuals: DetectorResiduals | None = None) -> TrainingBatch:
    """Draw ``batch`` synthetic faces of ``flame`` and their 68 projected landmarks, with
    generic detector-like noise, or for :data:`DETECTOR_SHARE` of them (when ``residuals`` are
    given) a calibrated detector's error plus a little noise."""
    def uniform(low: float, high: float, *size: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*size, generator=generator)

    shape = torch.randn(batch, flame.n_shape, generator=generator) * 0.9
    if flame.expression_bounds is not None:  # sparse blendshape weights
        active = torch.rand(batch, flame.n_expression, generator=generator) < 0.25
        expression = active * uniform(0.0, 0.8, batch, flame.n_expression)
    else:
        expression = torch.randn(batch, flame.n_expression, generator=generator) * 0.8
        expression[:, 20:] *= 0.2
    yaw = torch.deg2rad(uniform(-90, 90, batch))
    pitch = torch.deg2rad(uniform(-45, 45, batch))
    roll = torch.deg2rad(uniform(-30, 30, batch))
    rotation = _euler_rotation(yaw, pitch, roll)
    pose = torch.zeros(batch, N_POSE)
    pose[:, GLOBAL] = axis_angle_from_rotation(rotation)
    pose[:, JAW.start] = uniform(0.0, 0.3, batch) * (torch.rand(batch, generator=generator) < 0.7)
    with torch.no_grad():
        landmarks = flame(shape=shape, expression=expression, pose=pose).landmarks  # (B, 68, 3)
    scale = uniform(5.0, 10.0, batch)
    shift = torch.randn(batch, 2, generator=generator) * 0.02
    image = torch.stack([scale[:, None] * (landmarks[..., 0] + shift[:, :1]),
                         -scale[:, None] * (landmarks[..., 1] + shift[:, 1:])], dim=-1)
    # detector-like noise (a fraction of the face size; the contour noisier) and gaps
    size = (image.amax(dim=1) - image.amin(dim=1)).amax(dim=1)
    sigma = uniform(0.003, 0.02, batch) * size
    noise = torch.randn(image.shape, generator=generator) * sigma[:, None, None]
    noise[:, ibug.CONTOUR] *= 2.0
    noisy = image + noise
    if residuals is not None:
        degrees = torch.rad2deg(torch.stack([yaw, pitch, roll], dim=1))
        calibrated = torch.rand(batch, generator=generator) < DETECTOR_SHARE
        detector_like = _detector_like(image, degrees, residuals, generator) + noise * 0.3
        noisy = torch.where(calibrated[:, None, None], detector_like, noisy)
    missing = torch.rand(batch, ibug.N_LANDMARKS, generator=generator) < uniform(0.0, 0.08, batch)[:, None]
    occluded = torch.rand(batch, generator=generator) < 0.25  # a hand over the mouth or an eye
    region = torch.randint(0, 3, (batch,), generator=generator)
    for code, index_set in enumerate((ibug.MOUTH, ibug.RIGHT_EYE, ibug.LEFT_EYE)):
        rows = occluded & (region == code)
        missing[rows, index_set] = True
    noisy = torch.where(missing[..., None], torch.full_like(noisy, float("nan")), noisy)
    normalised, centre, half = crop_normalise(noisy)
    clean = (image - centre[:, None]) / half[:, None, None]
    # the camera of the crop: u' = (s / h)(x + tx - c_u / s), v' = -(s / h)(y + ty + c_v / s)
    camera = torch.stack([scale / half, shift[:, 0] - centre[:, 0] / scale,
                          shift[:, 1] + centre[:, 1] / scale], dim=1)
    return TrainingBatch(normalised, clean, rotation, pose, expression, shape, camera)


def project(flame, prediction: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's 68 landmarks for predicted parameters, projected into crop coordinates."""
    batch = prediction["rotation"].shape[0]
    pose = torch.zeros(batch, N_POSE, dtype=prediction["jaw"].dtype, device=prediction["jaw"].device)
    pose = torch.cat([axis_angle_from_rotation(prediction["rotation"]), pose[:, 3:6],
                      prediction["jaw"], pose[:, 9:]], dim=1)
    shape = prediction["shape"]
    points = flame(shape=shape, expression=prediction["expression"], pose=pose).landmarks
    s, tx, ty = prediction["camera"].unbind(dim=1)
    return torch.stack([s[:, None] * (points[..., 0] + tx[:, None]),
                        -s[:, None] * (points[..., 1] + ty[:, None])], dim=-1)


@dataclass
class TrainingLog:
    """Curves and settings of a training run (saved with the weights)."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    landmark_error: list[float] = field(default_factory=list)  # crop-normalised units
    seconds: float = 0.0
    batch: int = 0


def train(flame, spec: RegressorSpec, minutes: float = 8.0, batch: int = 512, seed: int = 0,
          max_steps: int | None = None, residuals: DetectorResiduals | None = None,
          progress: Callable[[int, float, float], None] | None = None) -> tuple[LandmarkRegressor, TrainingLog]:
    """Train a regressor for ``flame`` on synthetic projections for at most ``minutes``.

    Args:
        flame: a :class:`flamefit.flame.flame_layer.FLAME` with landmarks (on the CPU).
        spec: what to predict (its ``detector`` is set from ``residuals``).
        residuals: a detector's calibrated errors (:func:`calibrate_detector`), or None for
            generic noise only. They are not mirrored to the other side: MediaPipe is not
            symmetric (on the open model its mean residuals at yaw 60-90 and the mirrored ones
            at yaw -90..-60 differ by about half their size).
        minutes: wall-clock budget; the learning rate decays over it.
        max_steps: stop after this many steps (tests).
        progress: called with (step, elapsed seconds, loss) every 10 steps.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    flame = LandmarkLayer(flame) if not isinstance(flame, LandmarkLayer) else flame
    spec = RegressorSpec(**{**asdict(spec), "detector": "" if residuals is None else residuals.detector})
    regressor = LandmarkRegressor(spec)
    optimiser = torch.optim.AdamW(regressor.parameters(), lr=2e-3, weight_decay=1e-4)
    log = TrainingLog(batch=batch)
    started = time.time()
    budget = minutes * 60.0
    step = 0
    while True:
        elapsed = time.time() - started
        if elapsed >= budget or (max_steps is not None and step >= max_steps):
            break
        fraction = elapsed / budget if max_steps is None else step / max_steps
        for group in optimiser.param_groups:
            group["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0))) + 1e-5
        data = training_batch(flame, batch, generator, residuals)
        prediction = regressor(data.landmarks)
        loss, landmark_error = _loss(flame, spec, prediction, data)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(regressor.parameters(), 5.0)
        optimiser.step()
        step += 1
        if step % 10 == 0:
            log.steps.append(step)
            log.loss.append(round(float(loss.detach()), 5))
            log.landmark_error.append(round(float(landmark_error), 5))
            if progress is not None:
                progress(step, time.time() - started, float(loss.detach()))
    log.seconds = round(time.time() - started, 1)
    regressor.eval()
    return regressor, log


def _loss(flame, spec: RegressorSpec, prediction: dict, data: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor]:
    # the Frobenius distance 2 sqrt(2) sin(angle / 2): the geodesic angle, smooth at 0
    rotation = (prediction["rotation"] - data.rotation).flatten(1).norm(dim=1).mean()
    jaw = (prediction["jaw"] - data.pose[:, JAW]).abs().mean()
    expression = (prediction["expression"] - data.expression[:, :spec.n_expression]).abs().mean()
    shape = (prediction["shape"] - data.shape[:, :spec.n_shape]).abs().mean()
    camera = ((prediction["camera"][:, 0].log() - data.camera[:, 0].log()).abs().mean()
              + (prediction["camera"][:, 1:] - data.camera[:, 1:]).abs().mean() * 10)
    projected = project(flame, prediction)
    landmark_error = (projected - data.clean).norm(dim=-1).mean()
    loss = rotation + jaw + 0.5 * expression + 0.1 * shape + camera + 5.0 * landmark_error
    return loss, landmark_error.detach()


# -- files -------------------------------------------------------------------------------------
SHIPPED_REGRESSOR = Path(__file__).resolve().parent / "open_model_landmark_regressor.pt"


def save_regressor(path: str | Path, regressor: LandmarkRegressor, log: TrainingLog) -> Path:
    """Write weights, spec and training curves (``torch.save`` of plain tensors and lists)."""
    from flamefit.utils import atomic_write

    payload = {"version": REGRESSOR_VERSION, "spec": asdict(regressor.spec),
               "state": {k: v.detach().cpu() for k, v in regressor.state_dict().items()},
               "training": asdict(log)}
    return atomic_write(path, lambda stream: torch.save(payload, stream))


def load_regressor(path: str | Path) -> LandmarkRegressor | None:
    """A saved regressor, or None when missing, unreadable or of another version."""
    import pickle

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
        return None
    if not isinstance(payload, dict) or payload.get("version") != REGRESSOR_VERSION:
        return None
    spec = payload["spec"]
    bounds = spec.get("expression_bounds")
    spec = RegressorSpec(**{**spec, "expression_bounds": None if bounds is None else tuple(bounds)})
    regressor = LandmarkRegressor(spec)
    regressor.load_state_dict(payload["state"])
    regressor.eval()
    return regressor


def spec_for(flame, model_sha256: str) -> RegressorSpec:
    """The spec for a model: its leading identity coefficients, all of a blendshape model's
    expressions or FLAME's first 50."""
    n_expression = flame.n_expression if flame.expression_bounds is not None else min(50, flame.n_expression)
    return RegressorSpec(n_shape=min(N_SHAPE_PREDICTED, flame.n_shape), n_expression=n_expression,
                         expression_bounds=flame.expression_bounds, model_sha256=model_sha256)


# -- inference ---------------------------------------------------------------------------------
def initial_values(regressor: LandmarkRegressor, landmarks_crop_px: np.ndarray, resolution: int
                   ) -> list[dict[str, np.ndarray]]:
    """Starting values for the fit from detected landmarks.

    Args:
        landmarks_crop_px: ``(B, 68, 2)`` the landmarks in the fit's crop (pixel indices).
        resolution: the crop side (pixels).

    Returns:
        per item ``pose (15,)`` (global and jaw set), ``expression (E,)``, ``shape (S,)`` and
        ``camera (3,)`` (orthographic, this crop) for
        :func:`flamefit.fitting.batch._initial_parameters`.
    """
    points = torch.as_tensor(np.asarray(landmarks_crop_px, np.float32))
    half = resolution / 2.0
    image = (points + 0.5 - half) / half  # screen -> [-1, 1] across the crop
    normalised, centre, box_half = crop_normalise(image)
    with torch.no_grad():
        out = regressor(normalised)
    s, tx, ty = out["camera"].unbind(dim=1)
    # back from the landmark crop to the fit's crop: u = c + h u'
    camera = torch.stack([s * box_half, tx + centre[:, 0] / (s * box_half),
                          ty - centre[:, 1] / (s * box_half)], dim=1)
    pose = torch.zeros(points.shape[0], N_POSE)
    pose[:, GLOBAL] = axis_angle_from_rotation(out["rotation"])
    pose[:, JAW] = out["jaw"]
    return [{"pose": pose[i].numpy(), "expression": out["expression"][i].numpy(),
             "shape": out["shape"][i].numpy(), "camera": camera[i].numpy()}
            for i in range(points.shape[0])]


def cache_path(model_sha256: str) -> Path:
    from flamefit.flame.demo_head.writer import default_cache_dir

    return default_cache_dir() / "landmark_regressors" / f"{model_sha256[:16]}_v{REGRESSOR_VERSION}.pt"


def train_for_model(scene, minutes: float = TRAINING_MINUTES, detector: str = "auto",
                    calibration_renders: int = 1000, log: Callable[[str], None] = print,
                    calibration_progress: Callable[[int, int], None] | None = None,
                    progress: Callable[[int, float, float], None] | None = None
                    ) -> tuple[LandmarkRegressor, TrainingLog]:
    """Calibrate ``detector`` on renders of ``scene``'s model (at most a quarter of the budget;
    skipped when the detector cannot run here or is ``"none"``), then train for the rest of
    ``minutes`` on the CPU. ``"auto"`` is :func:`flamefit.fitting.detect.resolve_detector`'s
    choice, the detector ``flamefit fit`` uses by default."""
    import copy

    from flamefit.fitting.dense_embedding import model_sha256
    from flamefit.fitting.detect import resolve_detector

    started = time.time()
    detector = resolve_detector(detector) if detector != "none" else detector
    residuals = None
    if detector != "none":
        try:
            residuals = calibrate_detector(scene, calibration_renders, detector=detector,
                                           progress=calibration_progress, seconds=minutes * 60 / 4)
        except Exception as error:  # noqa: BLE001 - a detector that cannot run: generic noise
            log(f"landmark regressor: no {detector} calibration ({error}); training with generic noise")
    flame = scene.flame if scene.flame.v_template.device.type == "cpu" else copy.deepcopy(scene.flame).cpu()
    spec = spec_for(flame, model_sha256(scene.model_file) if scene.model_file else "")
    left = max(minutes - (time.time() - started) / 60, 0.1)
    return train(flame, spec, minutes=left, residuals=residuals, progress=progress)


def ready_regressor(scene) -> LandmarkRegressor | None:
    """The regressor of ``scene``'s model file when one is ready, shipped (open model) or
    cached; None otherwise (nothing is trained)."""
    if getattr(scene, "landmark_regressor", None) is not None:
        return scene.landmark_regressor
    if getattr(scene, "model_file", None) is None:
        return None
    from flamefit.fitting.dense_embedding import model_sha256

    sha256 = model_sha256(scene.model_file)
    for path in (SHIPPED_REGRESSOR, cache_path(sha256)):
        found = load_regressor(path) if path.is_file() else None
        if found is not None and found.spec.model_sha256 == sha256:
            return found
    return None


def regressor_for(scene, log: Callable[[str], None] = print, minutes: float = TRAINING_MINUTES
                  ) -> LandmarkRegressor:
    """The model's regressor: :func:`ready_regressor`'s, or trained now (``minutes`` on the
    CPU, with a message; :func:`train_for_model`) and cached per model file."""
    from flamefit.fitting.dense_embedding import model_sha256

    found = ready_regressor(scene)
    if found is not None:
        return found
    model_file = scene.model_file
    sha256 = model_sha256(model_file)
    log(f"training the landmark regressor for {model_file} (once per model file, "
        f"{minutes:g} minutes on the CPU; `flamefit train-landmark-regressor` does it ahead)")
    regressor, training = train_for_model(scene, minutes=minutes, log=log)
    save_regressor(cache_path(sha256), regressor, training)
    return regressor

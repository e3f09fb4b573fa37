"""Files in other regressors' and trackers' exact layouts, written as those tools write them,
with the values flamefit should read back (shared by the reader's and the CLI's tests).

Each writer takes a folder and returns ``(path, truth)``: ``path`` is what ``--init`` gets, and
``truth`` holds the expected ``pose (15,)`` in flamefit's frame and the raw ``shape``,
``expression``, ``camera`` (in the tool's crop) and ``light`` where the tool saves them. The
layouts follow the tools' sources (named per writer); the values are arbitrary but plausible.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch

GLOBAL = np.array([0.05, -0.3, 0.04])  # a head turned ~17 degrees
JAW = np.array([0.12, 0.01, -0.02])
NECK = np.array([0.03, 0.02, 0.0])
LEFT_EYE = np.array([0.02, 0.1, 0.0])
RIGHT_EYE = np.array([0.02, 0.12, 0.0])
FLIP = np.diag([1.0, -1.0, -1.0])


def rotation(vector) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(vector, dtype=np.float64))[0]


def axis_angle(matrix) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(matrix, dtype=np.float64))[0][:, 0]


def six_d(vector) -> np.ndarray:
    """PyTorch3D's ``matrix_to_rotation_6d``: the first two rows of the rotation matrix."""
    return rotation(vector)[:2].reshape(6)


def full_pose(global_=GLOBAL, neck=None, jaw=JAW, eyes=None) -> np.ndarray:
    pose = np.zeros(15)
    pose[0:3] = global_
    if neck is not None:
        pose[3:6] = neck
    pose[6:9] = jaw
    if eyes is not None:
        pose[9:15] = eyes
    return pose


def codes(rng, n):
    return (rng.normal(size=n) * 0.5).astype(np.float32)


def sh_light(rng) -> np.ndarray:
    light = rng.normal(size=(9, 3)).astype(np.float32) * 0.05
    light[0] += 1.13
    return light


def deca_codedict(folder: Path, container: str = "npy", tform: np.ndarray | None = None, seed: int = 0):
    """``decalib/deca.py`` ``encode``'s dict (torch tensors, batch of one; ``light`` (1, 9, 3),
    ``images`` and ``detail`` as well), saved with ``np.save`` (``container="npy"``), ``pickle``
    (``"pkl"``) or ``torch.save`` (``"pt"``); ``tform`` adds the dataset's 3x3 crop similarity."""
    rng = np.random.default_rng(seed)
    shape, exp, tex, light = codes(rng, 100), codes(rng, 50), codes(rng, 50), sh_light(rng)
    cam = np.array([8.5, 0.01, -0.015], np.float32)
    code = {"shape": shape[None], "tex": tex[None], "exp": exp[None],
            "pose": np.concatenate([GLOBAL, JAW]).astype(np.float32)[None], "cam": cam[None],
            "light": light[None], "images": np.zeros((1, 3, 224, 224), np.float32),
            "detail": np.zeros((1, 128), np.float32)}
    code = {k: torch.from_numpy(v) for k, v in code.items()}
    if tform is not None:
        code["tform"] = torch.from_numpy(np.asarray(tform, np.float32))[None]
    path = folder / f"deca_codedict.{container}"
    if container == "npy":
        np.save(path, code, allow_pickle=True)
    elif container == "pkl":
        with open(path, "wb") as stream:
            pickle.dump(code, stream)
    else:
        torch.save(code, path)
    return path, {"pose": full_pose(), "shape": shape, "expression": exp, "texture": tex,
                  "camera": cam, "light": light}


def emoca_folder(folder: Path, inferno: bool = False, seed: int = 1):
    """``gdl_apps/EMOCA/utils/io.py`` ``save_codes`` with an index (unbatched arrays): shape,
    exp, tex, pose, detail ``.npy``; inferno's EMOCA also writes ``cam`` and ``lightcode``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape, exp, tex = codes(rng, 100), codes(rng, 50), codes(rng, 50)
    np.save(folder / "shape.npy", shape)
    np.save(folder / "exp.npy", exp)
    np.save(folder / "tex.npy", tex)
    np.save(folder / "pose.npy", np.concatenate([GLOBAL, JAW]).astype(np.float32))
    np.save(folder / "detail.npy", codes(rng, 128))
    truth = {"pose": full_pose(), "shape": shape, "expression": exp, "texture": tex}
    if inferno:
        cam, light = np.array([9.0, 0.0, 0.01], np.float32), sh_light(rng)
        np.save(folder / "cam.npy", cam)
        np.save(folder / "lightcode.npy", light)
        truth.update(camera=cam, light=light)
    return folder, truth


def emica_folder(folder: Path, seed: int = 2):
    """``inferno_apps/FaceReconstruction/utils/output.py`` ``save_codes`` without an index
    (batched (1, N) arrays): shape 300, exp 100, tex 50, jawpose, globalpose, cam, lightcode."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape, exp, tex, light = codes(rng, 300), codes(rng, 100), codes(rng, 50), sh_light(rng)
    cam = np.array([8.8, -0.01, 0.0], np.float32)
    for name, value in (("shape", shape), ("exp", exp), ("tex", tex), ("jawpose", JAW),
                        ("globalpose", GLOBAL), ("cam", cam)):
        np.save(folder / f"{name}.npy", np.asarray(value, np.float32)[None])
    np.save(folder / "lightcode.npy", light[None])
    return folder, {"pose": full_pose(), "shape": shape, "expression": exp, "texture": tex,
                    "camera": cam, "light": light}


def smirk_outputs(folder: Path, seed: int = 3):
    """``src/smirk_encoder.py``'s outputs (tensors, batch of one) saved with ``torch.save``."""
    rng = np.random.default_rng(seed)
    shape, exp = codes(rng, 300), codes(rng, 50)
    cam = np.array([9.2, 0.005, 0.02], np.float32)
    outputs = {"pose_params": GLOBAL, "cam": cam, "shape_params": shape, "expression_params": exp,
               "eyelid_params": np.array([0.1, 0.2]), "jaw_params": JAW}
    path = folder / "smirk.pt"
    torch.save({k: torch.tensor(np.asarray(v, np.float32))[None] for k, v in outputs.items()}, path)
    return path, {"pose": full_pose(), "shape": shape, "expression": exp, "camera": cam}


def mica_folder(folder: Path, seed: int = 4):
    """``demo.py``: ``<dst>/identity.npy`` (``code[0]``, 300 values), ``kpt7.npy``, ``kpt68.npy``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    identity = codes(rng, 300)
    np.save(folder / "identity", identity)
    np.save(folder / "kpt7", rng.normal(size=(7, 3)).astype(np.float32))
    np.save(folder / "kpt68", rng.normal(size=(1, 68, 3)).astype(np.float32))
    return folder, {"shape": identity}


def _numpy1(path: Path) -> None:
    """Rewrite a ``torch.save`` file as NumPy 1 wrote it (``numpy.core.multiarray`` names)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    for name in members:
        if name.endswith("data.pkl"):
            members[name] = members[name].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def metrical_frame(folder: Path, with_opencv: bool = True, numpy1: bool = False, seed: int = 5):
    """``tracker.py`` ``save_checkpoint``: ``torch.save`` of numpy arrays in ``flame`` (6-D jaw
    and eyes), ``camera`` (PyTorch3D 6-D R, t, fl, pp) and ``opencv`` (R, t, K)."""
    rng = np.random.default_rng(seed)
    shape, exp, tex, light = codes(rng, 300), codes(rng, 100), codes(rng, 140), sh_light(rng)
    head = rotation(GLOBAL)
    p3d = head.T @ np.diag([-1.0, 1.0, -1.0])  # X_cam = X R + T, PyTorch3D axes
    frame = {
        "flame": {"exp": exp[None], "shape": shape[None], "tex": tex[None], "sh": light[None],
                  "eyes": np.concatenate([six_d(LEFT_EYE), six_d(RIGHT_EYE)]).astype(np.float32)[None],
                  "eyelids": np.zeros((1, 2), np.float32), "jaw": six_d(JAW).astype(np.float32)[None]},
        "camera": {"R": p3d[:2].reshape(1, 6).astype(np.float32), "t": np.array([[0, 0, 1.0]], np.float32),
                   "fl": np.array([[9.8]], np.float32), "pp": np.zeros((1, 2), np.float32)},
        "img_size": np.array([512, 512]), "frame_id": 12, "global_step": 300,
    }
    if with_opencv:
        frame["opencv"] = {"R": (FLIP @ head)[None].astype(np.float32),
                           "t": np.array([[0.0, 0.0, 1.0]], np.float32),
                           "K": np.array([[[2500, 0, 256], [0, 2500, 256], [0, 0, 1]]], np.float32)}
    path = folder / "00012.frame"
    torch.save(frame, path)
    if numpy1:
        _numpy1(path)
    return path, {"pose": full_pose(eyes=np.concatenate([LEFT_EYE, RIGHT_EYE])), "shape": shape,
                  "expression": exp, "texture": tex, "light": light}


def pixel3dmm_frame(folder: Path, seed: int = 6):
    """``src/pixel3dmm/tracking/tracker.py``: ``flame`` {exp, shape, eyes, eyelids, jaw, neck,
    R (6-D head rotation), R_rotation_matrix, t}, ``camera`` {R_base_0 (OpenGL world to
    camera), t_base_0, fl, pp}, ``joint_transforms``, saved with ``torch.save``."""
    rng = np.random.default_rng(seed)
    shape, exp = codes(rng, 300), codes(rng, 100)
    base = rotation([0.0, 0.05, 0.0])
    head = base.T @ rotation(GLOBAL)  # seen from the base camera, the head is turned by GLOBAL
    frame = {
        "flame": {"exp": exp[None], "shape": shape[None],
                  "eyes": np.concatenate([six_d(LEFT_EYE), six_d(RIGHT_EYE)]).astype(np.float32)[None],
                  "eyelids": np.zeros((1, 2), np.float32), "jaw": six_d(JAW).astype(np.float32)[None],
                  "neck": six_d(NECK).astype(np.float32)[None],
                  "R": head[:2].reshape(1, 6).astype(np.float32),
                  "R_rotation_matrix": head[None].astype(np.float32),
                  "t": np.array([[0.0, 0.01, 0.0]], np.float32)},
        "img_size": np.array([512, 512]), "frame_id": 0, "global_step": 100,
        "camera": {"R_base_0": base[None].astype(np.float32), "t_base_0": np.array([[0, 0, 0.6]], np.float32),
                   "fl": np.array([[4.0]], np.float32), "pp": np.zeros((1, 2), np.float32)},
        "joint_transforms": np.tile(np.eye(4, dtype=np.float32), (1, 5, 1, 1)),
    }
    path = folder / "00000.frame"
    torch.save(frame, path)
    return path, {"pose": full_pose(neck=NECK, eyes=np.concatenate([LEFT_EYE, RIGHT_EYE])),
                  "shape": shape, "expression": exp}


def vhap_params(folder: Path, frames=("00000", "00001", "00002"), seed: int = 7):
    """``vhap/model/tracker.py`` ``save_result``: ``np.savez`` of per-frame rotation,
    translation, neck_pose, jaw_pose, eyes_pose, expr, and shape, timestep_id, n_processed_frames,
    focal_length, image_size. Frame ``i`` has its global rotation scaled by ``i + 1``."""
    rng = np.random.default_rng(seed)
    count = len(frames)
    shape, expr = codes(rng, 300), rng.normal(size=(count, 100)).astype(np.float32) * 0.3
    rotations = np.stack([GLOBAL * (i + 1) for i in range(count)]).astype(np.float32)
    path = folder / "tracked_flame_params_30.npz"
    np.savez(path, rotation=rotations, translation=np.zeros((count, 3), np.float32),
             neck_pose=np.tile(NECK, (count, 1)).astype(np.float32),
             jaw_pose=np.tile(JAW, (count, 1)).astype(np.float32),
             eyes_pose=np.tile(np.concatenate([LEFT_EYE, RIGHT_EYE]), (count, 1)).astype(np.float32),
             shape=shape, expr=expr, timestep_id=np.array(list(frames)), n_processed_frames=np.array(count),
             focal_length=np.array([1.5], np.float32), image_size=np.array([512, 512]))
    truths = [{"pose": full_pose(global_=rotations[i], neck=NECK, eyes=np.concatenate([LEFT_EYE, RIGHT_EYE])),
               "shape": shape, "expression": expr[i]} for i in range(count)]
    return path, truths


def fht_euler(camera_rotvec) -> np.ndarray:
    """flame-head-tracker's ``rotation_vector_to_euler_angles`` (as its ``tracker_base.py``
    stores ``cam[:, :3]``)."""
    r = rotation(camera_rotvec)
    return np.array([math.asin(np.clip(-r[2, 0], -1, 1)), math.atan2(r[2, 1], r[2, 2]),
                     math.atan2(r[1, 0], r[0, 0])])


def flame_head_tracker_npz(folder: Path, name: str = "7", seed: int = 8):
    """``tracker_video.py``: ``np.savez_compressed`` of one frame's ``ret_dict`` (batch of one):
    shape 300, exp 100, head_pose (zeros), jaw_pose, neck_pose, eye_pose, tex, light, cam 6 (Euler
    angles of the camera's rotation + its position), fov, K, and the images."""
    rng = np.random.default_rng(seed)
    shape, exp, tex, light = codes(rng, 300), codes(rng, 100), codes(rng, 50), sh_light(rng)
    camera_rotvec = -GLOBAL  # the camera turned the other way round: the head looks turned by GLOBAL
    cam = np.concatenate([fht_euler(camera_rotvec), [0.0, 0.0, 1.0]]).astype(np.float32)
    path = folder / f"{name}.npz"
    np.savez_compressed(path, shape=shape[None], exp=exp[None], head_pose=np.zeros((1, 3), np.float32),
                        jaw_pose=JAW[None].astype(np.float32), neck_pose=np.zeros((1, 3), np.float32),
                        eye_pose=np.concatenate([LEFT_EYE, RIGHT_EYE])[None].astype(np.float32),
                        tex=tex[None], light=light[None], cam=cam[None], fov=np.array([20.0], np.float32),
                        K=np.array([[[700, 0, 128], [0, 700, 128], [0, 0, 1]]], np.float32),
                        img=np.zeros((1, 512, 512, 3), np.uint8), lmks_68=np.zeros((1, 68, 2), np.float32))
    return path, {"pose": full_pose(eyes=np.concatenate([LEFT_EYE, RIGHT_EYE])), "shape": shape,
                  "expression": exp, "texture": tex, "light": light}


def ringnet_params(folder: Path, seed: int = 9):
    """``demo.py --save_flame_parameters``: ``np.save(params/<name>.npy, {cam, pose, shape,
    expression})`` with 1-D arrays; the global pose holds RingNet's half turn about x (its
    renderer looks down +z with y down)."""
    rng = np.random.default_rng(seed)
    shape, expression = rng.normal(size=100) * 0.5, rng.normal(size=50) * 0.5
    global_r = axis_angle(FLIP @ rotation(GLOBAL))
    cam = np.array([8.0, 0.003, -0.02])
    params = folder / "params"
    params.mkdir(parents=True, exist_ok=True)
    path = params / "astronaut.npy"
    np.save(path, {"cam": cam, "pose": np.concatenate([global_r, JAW]), "shape": shape,
                   "expression": expression})
    return path, {"pose": full_pose(), "ringnet_pose": full_pose(global_=global_r), "shape": shape,
                  "expression": expression, "camera": cam}


def ours_params(folder: Path, seed: int = 10):
    """Our ``params.npz`` (:func:`flamefit.fitting.parameters.save_parameters`)."""
    rng = np.random.default_rng(seed)
    shape, exp, tex, light = codes(rng, 100), codes(rng, 50), codes(rng, 12), sh_light(rng)
    camera = np.array([7.5, 0.002, 0.01], np.float32)
    path = folder / "params.npz"
    np.savez(path, shape=shape, expression=exp, pose=full_pose().astype(np.float32), texture=tex,
             light=light, camera=camera, camera_type=np.array("orthographic"))
    return path, {"pose": full_pose(), "shape": shape, "expression": exp, "texture": tex,
                  "camera": camera, "light": light}

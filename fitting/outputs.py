"""Step 4 of a batch fit: write one fitted photo's result folder ``OUT/<id>/``.

The files and their arrays are those of the schema in :mod:`flamefit.fitting.results`;
``report.json`` is written last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from flamefit.fitting.choices import OUTPUT_SETS  # what write_fit_outputs writes (all, params)
from flamefit.fitting.prepare import PreparedImage
from flamefit.fitting import results
from flamefit.flame.landmark_sets import inter_ocular_distance
from flamefit.renderer.pixel_frames import resize_index_matrix, screen_to_index
from flamefit.utils import write_image, write_npz

def crop_to_original_matrix(item: PreparedImage) -> np.ndarray:
    """``(3, 3)`` affine mapping crop pixels to the original photo's pixels, both in pixel-index
    coordinates (OpenCV's: pixel ``i`` centred on ``i``)."""
    inverse = np.vstack([item.transform.inverse, [0, 0, 1.0]])
    unscale = resize_index_matrix(1.0 / item.image.scale)
    return unscale @ inverse


def opencv_camera(camera, index: int, item: PreparedImage) -> dict[str, np.ndarray]:
    """OpenCV ``K (3,3), R (3,3), t (3,)`` of item ``index`` for the original photo's pixels."""
    K, R, t = camera.to_opencv()
    K = crop_to_original_matrix(item) @ K[index].detach().cpu().double().numpy()
    return {"K": K, "R": R[index].detach().cpu().double().numpy(),
            "t": t[index].detach().cpu().double().numpy()}




def write_fit_outputs(
    folder: Path,
    item: PreparedImage,
    index: int,
    scene,
    outcome,
    report: dict,
    overlay_resolution: int = 512,
    frames: list[np.ndarray] | None = None,
    files: str = "all",
) -> None:
    """Write the outputs of batch item ``index``; ``report.json`` last (marks it done).

    Args:
        folder: ``OUT/<name>/``.
        item: the prepared photo.
        index: the item's position in the fitted batch.
        scene: the :class:`flamefit.fitting.scene.HeadScene` that was fitted.
        outcome: the :class:`flamefit.fitting.optimizer.FitOutcome`.
        report: fields gathered by the caller (status, model, device, seconds...); completed here.
        overlay_resolution: crop-frame render size for the overlay on the photo.
        frames: ``(R, R, 3)`` uint8 renders of the fit's progress, written as ``progress.gif``.
        files: one of :data:`OUTPUT_SETS`.
    """
    from flamefit.fitting.parameters import FitParameters, save_parameters

    if files not in OUTPUT_SETS:
        raise ValueError(f"files must be one of {OUTPUT_SETS}, got {files!r}")
    folder.mkdir(parents=True, exist_ok=True)
    params = FitParameters(**{k: v[index : index + 1] for k, v in outcome.params.tensors().items()})
    offset = None if outcome.texture_offset is None else outcome.texture_offset[index : index + 1]
    resolution = item.crop.shape[0]

    save_parameters(folder / results.PARAMS_FILE, params.item(0),
                    camera_type=np.array(scene.camera_type), resolution=np.array(resolution))

    camera = opencv_camera(scene.camera(params, resolution), 0, item)
    write_npz(folder / results.CAMERA_FILE, **camera, image_size=np.array(item.image.original_size))

    to_original = crop_to_original_matrix(item)
    fitted_screen = outcome.landmarks[index].detach().cpu().double().numpy()
    fitted_crop = screen_to_index(fitted_screen)
    fitted = item.image.to_original(item.transform.to_image(fitted_crop))
    detected = item.image.to_original(item.landmarks)
    dense_arrays, dense_report = _dense_outputs(item, index, outcome, scene)
    write_npz(folder / results.LANDMARKS_FILE, detected=detected, fitted=fitted,
              detected_crop=item.landmarks_crop, fitted_crop=fitted_crop, **dense_arrays)

    if files == "all":
        _write_meshes(folder, scene, params, offset)
        _write_pictures(folder, item, scene, params, offset, fitted_screen, overlay_resolution)
        if frames:
            from flamefit.renderer.visualize import save_animation

            save_animation(frames, folder / results.PROGRESS_FILE, fps=10)

    iod = inter_ocular_distance(item.landmarks_crop)
    lmk_error = float(np.linalg.norm(fitted_crop - item.landmarks_crop, axis=1).mean())
    report.update({
        "landmark_error_px_crop": lmk_error,
        "landmark_error_percent_iod": 100.0 * lmk_error / max(iod, 1e-6),
        **dense_report,
        "photometric_error": float(outcome.photometric_error[index]),
        "losses": {stage: float(v[index]) for stage, v in outcome.losses.items()},
        "steps": dict(outcome.steps),
        "camera_opencv": {k: v.tolist() for k, v in camera.items()},
        "crop_to_original": to_original.tolist(),
        "outputs": sorted(p.name for p in folder.iterdir()
                          if p.is_file() and not p.name.startswith(".") and p.name != results.REPORT_FILE)
                   + [results.REPORT_FILE],
    })
    results.write_report(folder, report)


def _write_meshes(folder: Path, scene, params, offset) -> None:
    """``mesh.obj`` (+ ``.mtl``, ``.png``) and ``mesh.glb``: the head in model space with its albedo."""
    from flamefit.renderer.export import save_glb, save_obj
    from flamefit.renderer.visualize import to_uint8

    with torch.no_grad():
        albedo = scene.albedo(params.texture)
        if offset is not None:
            albedo = albedo + offset
        vertices = scene.flame(shape=params.shape, expression=params.expression, pose=params.pose).vertices
    mesh_arrays = dict(vertices=vertices[0].cpu().numpy(), faces=scene.flame.faces.cpu().numpy(),
                       vt=scene.vt.cpu().numpy(), ft=scene.ft.cpu().numpy(),
                       texture=to_uint8(albedo[0].clamp(0, 1)))
    save_obj(folder / results.MESH_FILE, **mesh_arrays)
    save_glb(folder / results.MESH_GLB_FILE, **mesh_arrays)


def _write_pictures(folder: Path, item: PreparedImage, scene, params, offset, fitted_screen: np.ndarray,
                    overlay_resolution: int) -> None:
    """``overlay.png`` (the render over the photo) and ``sheet.png`` (input, landmarks, render,
    shape, overlay in the crop)."""
    from flamefit.fitting.crop import crop_transform
    from flamefit.renderer.visualize import draw_landmarks, make_sheet, shape_image, to_uint8
    from flamefit.renderer.visualize import overlay as blend

    resolution = item.crop.shape[0]
    with torch.no_grad():
        crop_render = scene.render(params, resolution, texture_offset=offset)
        shape = shape_image(crop_render.vertices, scene.camera(params, resolution), scene.flame.faces)
    # Overlay on the (possibly downscaled) photo: the fitted face region (the rest of the head is
    # unconstrained by the photo: its light and albedo are extrapolated), rendered in a frame
    # twice the crop's size around the same centre so that nothing is cut at the crop's edges.
    x0, y0, x1, y1 = item.transform.box
    half = x1 - x0
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    wide_box = np.array([centre_x - half, centre_y - half, centre_x + half, centre_y + half])
    wide = crop_transform(wide_box, overlay_resolution)
    with torch.no_grad():
        big = scene.render(params, overlay_resolution, texture_offset=offset, zoom=0.5)
    composite = wide.paste_onto(
        item.image.rgb, big.image[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy(),
        0.85 * big.face_mask[0, 0].cpu().numpy())
    write_image(folder / results.OVERLAY_FILE, to_uint8(composite))

    crop_u8 = to_uint8(item.crop)
    crop_tensor = torch.from_numpy(item.crop).permute(2, 0, 1)[None].to(crop_render.image)
    sheet = make_sheet(
        [crop_u8,
         draw_landmarks(crop_u8, detected=item.landmarks_screen, fitted=fitted_screen),
         to_uint8(crop_render.image[0]),
         to_uint8(shape[0]),
         to_uint8(blend(crop_render.image[:1], crop_render.alpha[:1], crop_tensor)[0])],
        labels=["input", "landmarks (green detected, red fitted)", "render", "shape", "overlay"],
    )
    write_image(folder / results.SHEET_FILE, sheet)


def _dense_outputs(item: PreparedImage, index: int, outcome, scene) -> tuple[dict, dict]:
    """``landmarks.npz`` arrays and ``report.json`` fields of the dense (MediaPipe) points:
    ``detected_dense (478, 2)`` and ``fitted_dense (478, 2)`` (NaN for points the fit does not
    use) in the original photo's pixels, ``dense_used (478,)`` bool; the report gets their
    median residual in % of the inter-ocular distance and the embedding's figures."""
    if item.dense is None:
        return {}, {}
    detected = item.image.to_original(item.dense)
    fitted = np.full_like(detected, np.nan)
    used = np.zeros(len(detected), bool)
    report: dict = {}
    if outcome.dense is not None and scene.dense_embedding is not None:
        ids = scene.dense_ids.cpu().numpy()
        fitted_crop = screen_to_index(outcome.dense[index].detach().cpu().double().numpy())
        fitted[ids] = item.image.to_original(item.transform.to_image(fitted_crop))
        used[ids] = True
        residual = np.linalg.norm(fitted_crop - item.dense_crop[ids], axis=1)
        iod = inter_ocular_distance(item.landmarks_crop)
        report = {"dense_landmarks": {
            "points_detected": int(len(detected)), "points_fitted": int(used.sum()),
            "median_error_percent_iod": round(100.0 * float(np.median(residual)) / max(iod, 1e-6), 3),
            "embedding": scene.dense_embedding.summary()}}
    return {"detected_dense": detected, "fitted_dense": fitted, "dense_used": used}, report

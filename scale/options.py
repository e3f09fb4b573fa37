"""Options of the dataset and scale-out jobs and of ``flamefit select`` as dataclasses,
importable without torch or Ray: the command line takes its defaults from here,
:func:`flamefit.scale.jobs.fit_dataset`, :func:`flamefit.scale.texture_jobs.build_texture_space_dataset`
and :func:`flamefit.scale.select.select_photos` take instances."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: ``--ray`` without an address: start a local Ray instance for the job (or join the one
#: ``$RAY_ADDRESS`` names, or the one this process already started).
LOCAL_RAY = "local"


@dataclass
class ScaleOptions:
    """How a job reads its dataset and where it runs.

    Attributes:
        ray: None (this process), :data:`LOCAL_RAY`, or a Ray cluster's address
            (``auto``, ``HEAD:6379``, ``ray://HEAD:10001``).
        workers: fitting actors; None: one per GPU of the cluster, else the cluster's CPUs
            less one (one is left to the readers and the driver).
        cpus_per_worker: CPUs each actor reserves; None: 1 with GPUs, else 0.5, so that the
            readers are never starved on a laptop (two 1-CPU actors on 2 CPUs deadlock Ray Data).
        gpus_per_worker: GPUs each actor reserves; None: 1 when the cluster has GPUs, else 0.
        landmarks_from_metadata: use FFHQ's ``ffhq-dataset-v2.json`` landmarks instead of
            detecting (photos without an entry are detected, with a note).
        only: a text file of photo ids to keep (``flamefit select``'s ``selected.txt``).
        ray_cpus: CPUs of a local Ray instance started for the job (None: all).
    """

    ray: str | None = None
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    landmarks_from_metadata: bool = False
    only: Path | None = None
    ray_cpus: int | None = None


@dataclass
class SelectOptions:
    """Criteria of :func:`flamefit.scale.select.select_photos`.

    Attributes:
        count: photos to choose.
        max_yaw, max_pitch: largest head turn and tilt, degrees (the rotation of the
            open model's mean face that best explains the 51 inner landmarks).
        min_face: smallest face, the side of the 68 landmarks' box in original-photo pixels.
        min_sharpness: smallest variance of the Laplacian of the grey 128 px face crop
            (values 0-255; blurry FFHQ photos score below ~20).
        balance: choose evenly across the six skin-tone bands of the individual typology angle
            (ITA; very light > 55 > light > 41 > intermediate > 28 > tan > 10 > brown > -30 >
            dark), the sharpest first within a band; False: the sharpest overall.
        detector: face/landmark detector (every face is counted: one face is required; with
            :attr:`ScaleOptions.landmarks_from_metadata` nothing is detected and the count is
            taken as one, FFHQ's photos being aligned single-face crops).
        seed: breaks ties.
    """

    count: int = 1500
    max_yaw: float = 30.0
    max_pitch: float = 25.0
    min_face: float = 200.0
    min_sharpness: float = 20.0
    balance: bool = True
    detector: str = "dlib"
    seed: int = 0

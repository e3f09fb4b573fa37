"""A real server fitting real uploads (tiny fits): two at once, progress as server-sent events,
the downloads, a restart, and an oversized upload over a real socket."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import zipfile

import httpx
import numpy as np
import pytest

from tests.web.conftest import quick_options
from tests.web.server import running_server

pytestmark = pytest.mark.slow  # fits photos end to end (detection, fit, outputs)

TIMEOUT = 240.0


def follow_events(base: str, job_id: str) -> list[dict]:
    """Every job state the event stream sends, until it ends (done or failed)."""
    states = []
    with httpx.stream("GET", f"{base}/api/jobs/{job_id}/events", timeout=httpx.Timeout(TIMEOUT)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line[6:]))
    return states


@pytest.fixture(scope="module")
def served(tmp_path_factory, astronaut_png):
    """Two photos uploaded at the same time to a server with two workers, both followed to the
    end; yields (data_dir, base URL, [job ids], [event lists])."""
    patcher = pytest.MonkeyPatch()
    patcher.setenv("FLAMEFIT_FLAME_DIR", str(tmp_path_factory.getbasetemp() / "no-flame-here"))
    data_dir = tmp_path_factory.mktemp("web-data")
    with running_server(quick_options(data_dir, workers=2)) as base:
        answers = [None, None]

        def upload(index: int) -> None:
            answers[index] = httpx.post(f"{base}/api/jobs", content=astronaut_png, timeout=60,
                                        headers={"X-Filename": f"astronaut {index}.png"})

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        ids = [a.json()["id"] for a in answers]
        events = [None, None]
        followers = [threading.Thread(target=lambda i=i: events.__setitem__(i, follow_events(base, ids[i])))
                     for i in range(2)]
        for thread in followers:
            thread.start()
        for thread in followers:
            thread.join(TIMEOUT)
        yield data_dir, base, ids, events
    patcher.undo()


def test_two_concurrent_uploads_both_finish(served):
    _, base, ids, events = served
    assert ids[0] != ids[1]
    for job_id, states in zip(ids, events):
        assert states and states[-1]["state"] == "done", states[-1] if states else None
        assert states[-1]["result"]["landmark_error_percent_iod"] < 50
        assert httpx.get(f"{base}/api/jobs/{job_id}").json()["state"] == "done"


def test_progress_streams_stage_step_and_landmark_error(served):
    _, _, _, events = served
    progress = [s["progress"] for s in events[0] if s["state"] == "running"]
    stages = {p.get("stage") for p in progress}
    assert {"rigid", "full"} & stages, stages
    fitting = [p for p in progress if p.get("stage") in ("rigid", "full")]
    assert all(p["steps"] == 4 and 1 <= p["step"] <= 4 for p in fitting)
    assert any(p.get("landmark_error_percent_iod") is not None for p in fitting)


def test_downloads(served):
    import trimesh

    _, base, ids, _ = served
    job = f"{base}/api/jobs/{ids[0]}"
    glb = httpx.get(f"{job}/files/mesh.glb")
    assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
    assert 'filename="astronaut_0-mesh.glb"' in glb.headers["content-disposition"]
    mesh = list(trimesh.load(io.BytesIO(glb.content), file_type="glb").geometry.values())[0]
    assert len(mesh.faces) > 5000 and mesh.visual.material.baseColorTexture is not None
    archive = zipfile.ZipFile(io.BytesIO(httpx.get(f"{job}/mesh.zip").content))
    assert sorted(archive.namelist()) == ["mesh.mtl", "mesh.obj", "mesh.png"]
    assert "Kd 1 1 1" in archive.read("mesh.mtl").decode()
    with np.load(io.BytesIO(httpx.get(f"{job}/files/params.npz").content)) as params:
        assert {"shape", "expression", "pose", "texture", "light", "camera"} <= set(params.files)
    with np.load(io.BytesIO(httpx.get(f"{job}/files/camera.npz").content)) as camera:
        assert camera["K"].shape == (3, 3) and camera["R"].shape == (3, 3)
    viewer = httpx.get(f"{job}/files/viewer.json").json()
    assert viewer["image_size"] == [512, 512] and np.asarray(viewer["model"]).shape[1] == 3
    assert httpx.get(f"{job}/files/overlay.png").headers["content-type"] == "image/png"


def test_a_restart_loses_no_finished_result(served):
    data_dir, _, ids, _ = served
    with running_server(quick_options(data_dir)) as base:
        for job_id in ids:
            assert httpx.get(f"{base}/api/jobs/{job_id}").json()["state"] == "done"
            assert httpx.get(f"{base}/api/jobs/{job_id}/files/mesh.glb").status_code == 200
        assert httpx.get(f"{base}/healthz").json()["jobs"]["done"] == 2


def test_an_oversized_upload_is_refused_before_it_is_sent_whole(tmp_path):
    """Over a real socket, chunked (no length): the 413 comes back, or the server closes the
    connection, long before the 64 MB body is sent; 1 MB is the limit."""
    total, chunk = 64 * 2**20, 2**16
    with running_server(quick_options(tmp_path, max_upload_bytes=2**20)) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            sent, answer = 0, b""
            conn.settimeout(0.0)
            try:
                while sent < total and not answer:
                    conn.settimeout(30)
                    conn.sendall(b"%x\r\n" % chunk + b"\xff" * chunk + b"\r\n")
                    sent += chunk
                    conn.settimeout(0.0)
                    try:
                        answer = conn.recv(4096)
                    except BlockingIOError:
                        pass
                conn.settimeout(10)
                answer = answer or conn.recv(4096)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server stopped reading and closed: the body was not read whole
    assert sent < total / 4
    if answer:
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def test_queued_photos_are_fitted_in_one_batch(tmp_path, astronaut_png, monkeypatch):
    """With --batch-size 2 (what a GPU gets by default: 8), the photos waiting in the queue go
    through the optimiser together."""
    from fastapi.testclient import TestClient

    import flamefit.fitting.batch as batch
    from flamefit.web.app import create_app

    sizes = []
    real = batch.fit_prepared

    def spy(scene, items, *args, **kwargs):
        sizes.append(len(items))
        return real(scene, items, *args, **kwargs)

    monkeypatch.setattr(batch, "fit_prepared", spy)
    app = create_app(quick_options(tmp_path, batch_size=2), start_workers=False)
    with TestClient(app) as client:
        ids = [client.post("/api/jobs", content=astronaut_png).json()["id"] for _ in range(2)]
        app.state.service.start()
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and any(
                client.get(f"/api/jobs/{i}").json()["state"] not in ("done", "failed") for i in ids):
            time.sleep(0.2)
        states = [client.get(f"/api/jobs/{i}").json() for i in ids]
    assert [s["state"] for s in states] == ["done", "done"], [s["error"] for s in states]
    assert sizes == [2]

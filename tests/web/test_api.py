"""The HTTP API without fitting (workers not started): what is refused, with which status, and
that nothing a request sends becomes a path."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from flamefit.web.app import create_app
from flamefit.web.jobs import CHOOSE, QUEUED
from tests.web.conftest import quick_options


@pytest.fixture
def client(tmp_path):
    app = create_app(quick_options(tmp_path / "data", max_upload_bytes=1_000_000), start_workers=False)
    with TestClient(app) as client:
        yield client


def test_page_health_and_config(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script type="importmap">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "http" not in policy
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["queued"] == 0
    assert client.get("/api/config").json()["max_upload_bytes"] == 1_000_000
    assert client.get("/static/vendor/three/build/three.module.js").status_code == 200


def test_junk_is_415_and_leaves_nothing(client, tmp_path):
    for body in (b"not a photo at all", b"%PDF-1.4 ...", b"\x00" * 5000):
        answer = client.post("/api/jobs", content=body, headers={"X-Filename": "x.jpg"})
        assert answer.status_code == 415, answer.text
        assert "not a photo" in answer.json()["error"]
    assert list((tmp_path / "data" / "jobs").iterdir()) == []


def test_an_image_without_a_face_is_422_in_plain_words(client):
    import numpy as np

    from tests.web.conftest import png_bytes

    answer = client.post("/api/jobs", content=png_bytes(np.full((200, 300, 3), 90, np.uint8)))
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("No face was found")


def test_oversize_declared_length_is_413(client, astronaut_png):
    answer = client.post("/api/jobs", content=b"\xff\xd8\xff" + b"0" * 1_000_000)
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


def test_pixel_limit_is_413(tmp_path, astronaut_png):
    app = create_app(quick_options(tmp_path, max_pixels=200_000), start_workers=False)
    with TestClient(app) as client:
        answer = client.post("/api/jobs", content=astronaut_png)
    assert answer.status_code == 413 and "512 x 512" in answer.json()["error"]


def call_upload(app, chunk: int, n_chunks: int, headers: list[tuple[bytes, bytes]]):
    """POST /api/jobs straight to the ASGI app, the body in ``n_chunks`` chunks; returns
    (status, chunks the app read)."""
    read = 0
    sent = []

    async def receive():
        nonlocal read
        if read < n_chunks:
            read += 1
            return {"type": "http.request", "body": b"\xff\xd8\xff" + b"0" * (chunk - 3),
                    "more_body": read < n_chunks}
        await asyncio.sleep(3600)  # the client would wait; the app must not

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/jobs", "raw_path": b"/api/jobs", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 5), "server": ("t", 80)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, read


def test_oversize_stream_is_413_before_the_body_is_read(tmp_path):
    """No Content-Length (chunked): the app stops reading at the limit, 1 MB of 64 MB."""
    app = create_app(quick_options(tmp_path, max_upload_bytes=1_000_000), start_workers=False)
    status, read = call_upload(app, chunk=65536, n_chunks=1024, headers=[])
    assert status == 413
    assert read == 1_000_000 // 65536 + 1  # 16 chunks read, 1008 never
    status, read = call_upload(app, chunk=65536, n_chunks=1024,
                               headers=[(b"content-length", str(65536 * 1024).encode())])
    assert status == 413 and read == 0  # a declared length over the limit: nothing is read
    assert list((tmp_path / "jobs").iterdir()) == []


def test_unknown_jobs_and_files_are_404(client, astronaut_png):
    for path in ("/api/jobs/AAAAAAAAAAAAAAAAAAAAAA", "/api/jobs/nope", "/api/jobs/AAAAAAAAAAAAAAAAAAAAAA/events",
                 "/api/jobs/AAAAAAAAAAAAAAAAAAAAAA/files/mesh.glb", "/api/jobs/AAAAAAAAAAAAAAAAAAAAAA/photo",
                 "/api/jobs/AAAAAAAAAAAAAAAAAAAAAA/mesh.zip"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "no such job" in answer.json()["error"]
    assert client.post("/api/jobs/AAAAAAAAAAAAAAAAAAAAAA/face", json={"face": 0}).status_code == 404


def test_path_traversal_names_are_harmless(client, astronaut_png, tmp_path):
    answer = client.post("/api/jobs", content=astronaut_png,
                         headers={"X-Filename": "..%2F..%2F..%2Fetc%2Fpasswd"})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["filename"] == "passwd" and job["state"] == QUEUED
    jobs = tmp_path / "data" / "jobs"
    assert sorted(p.name for p in (jobs / job["id"]).iterdir()) == ["job.json", "photo.png"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["jobs"]
    for name in ("../job.json", "..%2Fjob.json", "job.json", "photo.png", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                 "mesh.obj", "mesh.zip", "viewer.json%00"):
        assert client.get(f"/api/jobs/{job['id']}/files/{name}").status_code == 404, name
    for route in (f"/api/jobs/..%2F{job['id']}", f"/api/jobs/{job['id']}%2F..%2F..",
                  "/api/jobs/..%2F..%2F..%2Fetc%2Fpasswd", "/static/..%2F..%2Fapp.py",
                  "/static/../app.py"):
        assert client.get(route).status_code == 404, route
    # the results of a job that has not finished are not served
    assert client.get(f"/api/jobs/{job['id']}/files/mesh.glb").status_code == 409
    assert client.get(f"/api/jobs/{job['id']}/photo").content == astronaut_png


def test_several_faces_wait_for_the_visitors_choice(client, two_faces_png):
    answer = client.post("/api/jobs", content=two_faces_png, headers={"X-Filename": "two.png"})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["state"] == CHOOSE and len(job["faces"]) == 2
    (left, right) = sorted(face["box"][0] for face in job["faces"])
    assert left < 512 <= right  # one face in each half, boxes in the photo's pixels
    url = f"/api/jobs/{job['id']}/face"
    assert client.post(url, json={"face": 2}).status_code == 400
    assert client.post(url, json={"face": True}).status_code == 400
    assert client.post(url, content=b"junk").status_code == 400
    chosen = client.post(url, json={"face": 1})
    assert chosen.status_code == 200 and chosen.json()["state"] == QUEUED and chosen.json()["face"] == 1
    assert client.post(url, json={"face": 0}).status_code == 409
    stored = json.loads((client.app.state.store.folder(job["id"]) / "job.json").read_text())
    assert stored["face"] == 1 and stored["state"] == QUEUED


def test_a_full_queue_refuses_uploads_with_503(tmp_path, astronaut_png):
    app = create_app(quick_options(tmp_path, queue_size=1), start_workers=False)
    with TestClient(app) as client:
        assert client.post("/api/jobs", content=astronaut_png).status_code == 201
        busy = client.post("/api/jobs", content=astronaut_png)
    assert busy.status_code == 503 and "busy" in busy.json()["error"]
    assert len(list((tmp_path / "jobs").iterdir())) == 1


def test_face_boxes_and_size_are_those_of_the_photo_as_shown(client):
    """A phone photo stored sideways with EXIF orientation 6: the boxes the page draws are in
    the upright photo's pixels, and so is the size."""
    import io

    import numpy as np
    from PIL import Image
    from skimage import data

    upright = np.full((700, 512, 3), 235, np.uint8)
    upright[94:606] = data.astronaut()
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(buffer, format="JPEG", exif=exif, quality=92)
    answer = client.post("/api/jobs", content=buffer.getvalue())
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["image_size"] == [512, 700] and job["media_type"] == "image/jpeg"
    x0, y0, x1, y1 = job["faces"][0]["box"]
    assert 150 < x0 < x1 < 300 and 94 + 50 < y0 < y1 < 94 + 200  # the astronaut's face, upright

"""The job store: unguessable ids, no paths from requests, restart and expiry."""

from __future__ import annotations

import json
import time

import pytest

from flamefit.web.jobs import CHOOSE, DONE, JOB_ID, QUEUED, RUNNING, Job, JobStore


def make(store: JobStore, state: str, updated: float | None = None) -> Job:
    job_id, folder = store.new_folder()
    (folder / "photo.png").write_bytes(b"x")
    now = time.time() if updated is None else updated
    return store.add(Job(id=job_id, state=state, created=now, updated=now, filename="a.png",
                         photo="photo.png", media_type="image/png", image_size=[4, 4]))


def test_ids_are_random_urlsafe_and_distinct(tmp_path):
    store = JobStore(tmp_path)
    ids = {store.new_folder()[0] for _ in range(200)}
    assert len(ids) == 200 and all(JOB_ID.fullmatch(i) for i in ids)


@pytest.mark.parametrize("bad", ["..", "../jobs", "a/b", "", "x" * 21, "x" * 23, "%2e%2e" * 4, None, 7])
def test_strings_that_are_not_ids_never_reach_the_disk(tmp_path, bad):
    store = JobStore(tmp_path)
    assert store.get(bad) is None
    if isinstance(bad, str):
        with pytest.raises(ValueError):
            store.folder(bad)


def test_a_restart_keeps_finished_jobs_and_queues_unfinished_ones(tmp_path):
    store = JobStore(tmp_path)
    done, running, queued, choose = (make(store, s) for s in (DONE, RUNNING, QUEUED, CHOOSE))
    store.update(done.id, result={"seconds": 1.0})
    store.update(running.id, persist=False, progress={"stage": "full", "step": 3})
    (tmp_path / "not-a-job").mkdir()
    broken, _ = store.new_folder()  # a folder whose job.json never got written

    again = JobStore(tmp_path)
    requeue = again.load()
    assert sorted(job.id for job in requeue) == sorted([running.id, queued.id])
    assert again.get(done.id).state == DONE and again.get(done.id).result == {"seconds": 1.0}
    assert again.get(running.id).state == QUEUED and again.get(choose.id).state == CHOOSE
    assert again.get(broken) is None
    assert json.loads((tmp_path / done.id / "job.json").read_text())["state"] == DONE


def test_old_jobs_expire_unless_a_worker_holds_them(tmp_path):
    store = JobStore(tmp_path)
    now = time.time()
    old_done, old_queued, fresh = make(store, DONE), make(store, QUEUED), make(store, DONE)
    for job in (old_done, old_queued):
        job.updated = now - 7200
    removed = store.expire(keep_seconds=3600, now=now)
    assert removed == [old_done.id]
    assert not (tmp_path / old_done.id).exists() and store.get(old_done.id) is None
    assert store.get(old_queued.id) is not None and store.get(fresh.id) is not None

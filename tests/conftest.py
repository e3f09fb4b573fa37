"""Shared fixtures: the procedural test head (a FLAME-format test fixture), generated once per test session into a temp cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_head_dir(tmp_path_factory):
    from flamefit.flame.demo_head import ensure_demo_head

    return ensure_demo_head(cache_dir=tmp_path_factory.mktemp("demo_head_cache"))


@pytest.fixture(scope="session")
def demo_model(demo_head_dir):
    from flamefit.flame.model_file import load_flame_model

    return load_flame_model(demo_head_dir / "generic_model.pkl")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread and one BLAS thread for a module. On a busy 2-core machine (a developer's
    laptop running other jobs, a shared CI host) intra-op threads spin against each other and
    small batched products run several times slower; results do not depend on it."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def monkeypatch_module(demo_head_dir):
    """Module-wide environment: the session's demo head as the model cache (commands that pick
    their model themselves then use it); more variables can be set on the returned patcher."""
    patcher = pytest.MonkeyPatch()
    patcher.setenv("FLAMEFIT_CACHE", str(demo_head_dir.parent))
    yield patcher
    patcher.undo()

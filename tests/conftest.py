"""Shared fixtures: the open demo head, generated once per test session into a temp cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_head_dir(tmp_path_factory):
    from flame.demo_head import ensure_demo_head

    return ensure_demo_head(cache_dir=tmp_path_factory.mktemp("demo_head_cache"))


@pytest.fixture(scope="session")
def demo_model(demo_head_dir):
    from flame.model_file import load_flame_model

    return load_flame_model(demo_head_dir / "generic_model.pkl")

"""The restricted unpickler and the FLAME model loader, on FLAME-format files written here.

FLAME's pickles hold chumpy objects and scipy sparse matrices under their historical module
paths. The tests build such pickles with stand-in classes whose ``__module__``/``__qualname__``
are chumpy's and old scipy's (registered in ``sys.modules`` only while pickling), so the loader
is exercised on the same byte layout without chumpy installed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import scipy.sparse

from flamefit.flame.errors import ModelFileError
from flamefit.flame.model_file import convert_flame_model, load_flame_model, save_flame_npz
from flamefit.flame.pickle_io import chumpy_available, load_pickle, load_pickle_with_chumpy

N_VERTICES, N_FACES, N_JOINTS = 12, 8, 5
PARENTS = np.array([-1, 0, 1, 1, 1])


class StandInCh:
    """Pickles like ``chumpy.ch.Ch``: its ``__dict__`` (minus caches) with the value in ``x``."""

    def __init__(self, x: np.ndarray):
        self.x = np.asarray(x, dtype=np.float64)
        self._dirty_vars = {"x"}
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False

    @property
    def r(self) -> np.ndarray:
        return self.x


class StandInChOp:
    """Pickles like a ``chumpy.ch_ops`` expression: operands, no stored value ``x``."""

    def __init__(self, a: Any, b: Any):
        self.a, self.b = a, b


class StandInOldCsc:
    """Pickles like ``scipy.sparse.csc.csc_matrix`` of the Python-2 era."""

    def __init__(self, dense: np.ndarray, shape_key: str = "_shape"):
        csc = scipy.sparse.csc_matrix(dense)
        self.data, self.indices, self.indptr = csc.data, csc.indices, csc.indptr
        setattr(self, shape_key, dense.shape)
        self.maxprint = 50
        self.format = "csc"


@contextlib.contextmanager
def modules_holding(classes: dict[str, type]) -> Iterator[None]:
    """Register ``{"pkg.mod.Name": cls}`` as importable names for the duration of the block."""
    saved: dict[str, Any] = {}
    try:
        for dotted, cls in classes.items():
            module_name, name = dotted.rsplit(".", 1)
            parts = module_name.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                leaf = depth == len(parts)
                if prefix not in saved and (leaf or prefix not in sys.modules):
                    saved[prefix] = sys.modules.get(prefix)
                    sys.modules[prefix] = types.ModuleType(prefix)
            cls.__module__, cls.__qualname__, cls.__name__ = module_name, name, name
            setattr(sys.modules[module_name], name, cls)
        yield
    finally:
        for prefix, module in saved.items():
            if module is None:
                sys.modules.pop(prefix, None)
            else:
                sys.modules[prefix] = module


FAKE_CLASSES = {
    "chumpy.ch.Ch": StandInCh,
    "chumpy.ch_ops.add": StandInChOp,
    "scipy.sparse.csc.csc_matrix": StandInOldCsc,
}


def python2_style_dump(obj: Any, path: Path, protocol: int = 2) -> Path:
    """Pickle as FLAME's Python-2 files are: protocol 2, ``numpy.core`` names, stand-ins registered."""
    with modules_holding(FAKE_CLASSES):
        payload = pickle.dumps(obj, protocol=protocol)
    path.write_bytes(payload.replace(b"numpy._core.", b"numpy.core."))
    return path


def model_arrays(seed: int = 0, n_shape: int = 300, n_expression: int = 100) -> dict[str, np.ndarray]:
    """Consistent FLAME-format arrays for a tiny mesh (V=12, F=8, J=5)."""
    rng = np.random.default_rng(seed)
    weights = rng.random((N_VERTICES, N_JOINTS))
    j_regressor = np.where(rng.random((N_JOINTS, N_VERTICES)) < 0.3, rng.random((N_JOINTS, N_VERTICES)), 0.0)
    j_regressor[:, 0] += 0.1
    kintree = np.stack([PARENTS, np.arange(N_JOINTS)]).astype(np.int64)
    kintree[0, 0] = 2**32 - 1
    return {
        "v_template": rng.normal(size=(N_VERTICES, 3)) * 0.1,
        "f": rng.integers(0, N_VERTICES, size=(N_FACES, 3)).astype(np.uint32),
        "shapedirs": rng.normal(size=(N_VERTICES, 3, n_shape + n_expression)) * 1e-3,
        "posedirs": rng.normal(size=(N_VERTICES, 3, 9 * (N_JOINTS - 1))) * 1e-3,
        "J_regressor": j_regressor / j_regressor.sum(axis=1, keepdims=True),
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": kintree.astype(np.uint32),
        "J": rng.normal(size=(N_JOINTS, 3)),
    }


def flame2020_pickle(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``generic_model.pkl`` layout: shapedirs a chumpy Ch, J_regressor an old-path CSC matrix."""
    content: dict[str, Any] = dict(arrays)
    content["shapedirs"] = StandInCh(arrays["shapedirs"])
    content["J_regressor"] = StandInOldCsc(arrays["J_regressor"])
    content["bs_style"], content["bs_type"] = "lbs", "lrotmin"
    return python2_style_dump(content, path)


def flame2023_pickle(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``flame2023.pkl``-like: modern scipy CSC, J a chumpy Ch, other extras."""
    content: dict[str, Any] = dict(arrays)
    content["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    content["J"] = StandInCh(arrays["J"])
    content["bs_style"] = "lbs"
    with modules_holding(FAKE_CLASSES):
        path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def assert_matches(model: Any, arrays: dict[str, np.ndarray], n_shape: int = 300) -> None:
    np.testing.assert_array_equal(model.v_template, arrays["v_template"])
    np.testing.assert_array_equal(model.faces, arrays["f"].astype(np.int64))
    np.testing.assert_array_equal(model.shapedirs, arrays["shapedirs"][:, :, :n_shape])
    np.testing.assert_array_equal(model.exprdirs, arrays["shapedirs"][:, :, n_shape:])
    np.testing.assert_array_equal(model.posedirs, arrays["posedirs"])
    np.testing.assert_allclose(model.j_regressor, arrays["J_regressor"], rtol=0, atol=0)
    np.testing.assert_array_equal(model.weights, arrays["weights"])
    np.testing.assert_array_equal(model.parents, PARENTS)
    assert model.faces.dtype == np.int64 and model.parents.dtype == np.int64


# ---------------------------------------------------------------------------- restricted unpickler


def test_chumpy_and_sparse_pickle_loads_without_chumpy(tmp_path: Path) -> None:
    dense = np.arange(12.0).reshape(3, 4) * (np.arange(12).reshape(3, 4) % 3 == 0)
    content = {
        "ch": StandInCh(np.ones((2, 3))),
        "old_csc": StandInOldCsc(dense),
        "ancient_csc": StandInOldCsc(dense, shape_key="shape"),
        "csr": scipy.sparse.csr_matrix(dense),
        "coo": scipy.sparse.coo_matrix(dense),
        "nested": [np.float32(2.5), (np.int64(3), {"deep": StandInCh(np.zeros(2))})],
        "text": "lbs",
    }
    loaded = load_pickle(python2_style_dump(content, tmp_path / "mixed.pkl"))
    assert not chumpy_available()
    np.testing.assert_array_equal(loaded["ch"], np.ones((2, 3)))
    for key in ("old_csc", "ancient_csc", "csr", "coo"):
        assert isinstance(loaded[key], np.ndarray)
        np.testing.assert_array_equal(loaded[key], dense)
    assert loaded["nested"][0] == np.float32(2.5)
    np.testing.assert_array_equal(loaded["nested"][1][1]["deep"], np.zeros(2))
    assert loaded["text"] == "lbs"


def test_protocol_zero_pickle_loads(tmp_path: Path) -> None:
    path = python2_style_dump({"ch": StandInCh(np.eye(2))}, tmp_path / "p0.pkl", protocol=0)
    np.testing.assert_array_equal(load_pickle(path)["ch"], np.eye(2))


def test_chumpy_expression_without_value_is_named(tmp_path: Path) -> None:
    path = python2_style_dump({"shapedirs": StandInChOp(1, 2)}, tmp_path / "expr.pkl")
    with pytest.raises(ModelFileError, match=r"expr\.pkl.*chumpy\.ch_ops\.add.*without a stored value"):
        load_pickle(path)


class RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


class RunsEval:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> Any:
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


class RunsSubprocess:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> Any:
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize(
    ("payload", "named"),
    [(RunsShell, "system"), (RunsEval, "builtins.eval"), (RunsSubprocess, "subprocess.Popen")],
)
def test_pickle_that_runs_code_is_refused(tmp_path: Path, payload: type, named: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "evil": payload(marker)}, protocol=2))
    with pytest.raises(ModelFileError, match=r"generic_model\.pkl.*refusing to load class .*" + named) as info:
        load_pickle(path)
    assert "may be malicious or not a FLAME file" in str(info.value)
    with pytest.raises(ModelFileError, match="refusing to load class"):
        load_flame_model(path)
    assert not marker.exists()


def test_chumpy_path_uses_installed_chumpy_and_still_refuses(tmp_path: Path) -> None:
    arrays = model_arrays(seed=3)
    path = flame2020_pickle(tmp_path / "generic_model.pkl", arrays)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"x": RunsShell(tmp_path / "pwned")}, protocol=2))
    with modules_holding(FAKE_CLASSES):
        assert chumpy_available()
        raw = load_pickle_with_chumpy(path)
        model = load_flame_model(path)
        with pytest.raises(ModelFileError, match="refusing to load class"):
            load_pickle_with_chumpy(evil)
    np.testing.assert_array_equal(raw["shapedirs"], arrays["shapedirs"])
    assert_matches(model, arrays)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------- model files


def test_flame2020_layout_loads_with_same_arrays(tmp_path: Path) -> None:
    arrays = model_arrays(seed=1)
    model = load_flame_model(flame2020_pickle(tmp_path / "generic_model.pkl", arrays))
    assert_matches(model, arrays)
    assert (model.n_shape, model.n_expression, model.n_joints) == (300, 100, 5)
    assert model.extras["bs_style"] == "lbs" and model.extras["bs_type"] == "lrotmin"
    np.testing.assert_array_equal(model.extras["J"], arrays["J"])
    assert not model.is_demo and model.source.endswith("generic_model.pkl")


def test_flame2023_layout_loads_with_same_arrays(tmp_path: Path) -> None:
    arrays = model_arrays(seed=2)
    model = load_flame_model(flame2023_pickle(tmp_path / "flame2023.pkl", arrays))
    assert_matches(model, arrays)
    np.testing.assert_array_equal(model.extras["J"], arrays["J"])
    assert "bs_type" not in model.extras


def test_demo_head_split_and_label(tmp_path: Path) -> None:
    arrays = model_arrays(seed=4, n_shape=7, n_expression=5)
    arrays.update(n_shape=np.int64(7), n_expression=np.int64(5), model_name="flamefit open demo head (not FLAME)")
    path = tmp_path / "demo_head.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=4))
    model = load_flame_model(path)
    assert (model.n_shape, model.n_expression) == (7, 5) and model.is_demo
    assert_matches(model, arrays, n_shape=7)
    assert "n_shape" not in model.extras
    converted = load_flame_model(convert_flame_model(path, tmp_path / "demo_head.npz"))
    assert converted.is_demo and (converted.n_shape, converted.n_expression) == (7, 5)
    assert converted.extras["model_name"] == "flamefit open demo head (not FLAME)"


def test_npz_conversion_round_trips_without_pickle(tmp_path: Path) -> None:
    arrays = model_arrays(seed=5)
    source = flame2020_pickle(tmp_path / "generic_model.pkl", arrays)
    original = load_flame_model(source)
    converted = convert_flame_model(source)
    assert converted == tmp_path / "generic_model.npz"
    with np.load(converted, allow_pickle=False) as npz:
        assert {"v_template", "f", "shapedirs", "J_regressor", "kintree_table", "n_shape"} <= set(npz.files)
        assert npz["kintree_table"][0, 0] == 2**32 - 1
    again = load_flame_model(converted)
    for name in ("v_template", "faces", "shapedirs", "exprdirs", "posedirs", "j_regressor", "weights", "parents"):
        np.testing.assert_array_equal(getattr(again, name), getattr(original, name))
        assert getattr(again, name).dtype == getattr(original, name).dtype
    assert again.extras.keys() == original.extras.keys()
    assert again.extras["bs_type"] == "lrotmin"
    np.testing.assert_array_equal(again.extras["J"], original.extras["J"])
    save_flame_npz(again, tmp_path / "twice.npz")
    np.testing.assert_array_equal(load_flame_model(tmp_path / "twice.npz").exprdirs, original.exprdirs)


def write_model(path: Path, **changes: Any) -> Path:
    arrays: dict[str, Any] = model_arrays()
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    return path


def bad_weights() -> np.ndarray:
    weights = model_arrays()["weights"].copy()
    weights[4] *= 2.0
    return weights


def nan_template() -> np.ndarray:
    v_template = model_arrays()["v_template"].copy()
    v_template[3, 1] = np.nan
    return v_template


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"shapedirs": np.zeros((N_VERTICES, 3, 100))}, "shapedirs has 100 columns, expected 400 .*expression-only file"),
        ({"shapedirs": np.zeros((N_VERTICES, 3, 50))}, "shapedirs has 50 columns, expected 400"),
        ({"posedirs": np.zeros((N_VERTICES, 3, 35))}, r"posedirs has shape \(12, 3, 35\), expected \(12, 3, 36\)"),
        ({"weights": np.full((N_VERTICES + 1, N_JOINTS), 0.2)}, r"weights has shape \(13, 5\), expected \(12, 5\)"),
        ({"J_regressor": np.zeros((N_JOINTS, N_VERTICES - 1))}, r"J_regressor has shape \(5, 11\)"),
        ({"v_template": nan_template()}, "v_template holds NaN"),
        ({"weights": bad_weights()}, "skinning weights of vertex 4 sum to 2.0000, expected 1"),
        ({"kintree_table": np.array([[2**32 - 1, 0, 3, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)}, r"kintree_table parents \[-1, 0, 3, 1, 1\] do not form a tree"),
        ({"f": np.full((N_FACES, 3), N_VERTICES, dtype=np.uint32)}, "f refers to vertex 12"),
        ({"f": np.zeros((N_FACES, 4), dtype=np.uint32)}, r"f has shape \(8, 4\)"),
        ({"weights": None, "posedirs": None}, r"is missing the keys \['posedirs', 'weights'\]"),
        ({"n_shape": 10, "n_expression": 10}, r"n_shape \(10\) \+ n_expression \(10\) does not equal the 400"),
    ],
)
def test_bad_model_arrays_give_clear_errors(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelFileError, match=r"generic_model\.pkl: " + message):
        load_flame_model(write_model(tmp_path / "generic_model.pkl", **changes))


def test_missing_truncated_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"flame2023\.pkl: file not found"):
        load_flame_model(tmp_path / "flame2023.pkl")
    full = flame2020_pickle(tmp_path / "full.pkl", model_arrays()).read_bytes()
    truncated = tmp_path / "generic_model.pkl"
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(ModelFileError, match=r"generic_model\.pkl: ends early \(truncated pickle\)"):
        load_flame_model(truncated)
    png = tmp_path / "photo.pkl"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ModelFileError, match=r"photo\.pkl: is a PNG image, not a pickle"):
        load_flame_model(png)
    listing = tmp_path / "list.pkl"
    listing.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelFileError, match=r"list\.pkl: holds a list, not a dict"):
        load_flame_model(listing)
    broken_npz = tmp_path / "generic_model.npz"
    broken_npz.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match=r"generic_model\.npz: is not a readable \.npz"):
        load_flame_model(broken_npz)


def python2_array_opcodes(array: np.ndarray) -> bytes:
    """The opcodes Python 2's cPickle (protocol 2) writes for a C-contiguous ndarray: the raw
    data as a Python-2 ``str`` (BINSTRING), which only ``encoding='latin1'`` reads back."""

    def short_string(text: bytes) -> bytes:
        return b"U" + bytes([len(text)]) + text

    def small_int(n: int) -> bytes:
        return b"K" + bytes([n])

    def int32(n: int) -> bytes:
        return b"J" + struct.pack("<i", n)

    descr = array.dtype.str
    dtype = (
        b"cnumpy\ndtype\n" + short_string(descr[1:].encode()) + small_int(0) + small_int(1) + b"\x87R"
        + b"(" + small_int(3) + short_string(descr[:1].encode()) + b"NNN" + int32(-1) + int32(-1) + small_int(0) + b"tb"
    )
    raw = array.tobytes()
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + small_int(0) + b"\x85" + short_string(b"b") + b"\x87R"
        + b"(" + small_int(1) + b"(" + b"".join(int32(n) for n in array.shape) + b"t" + dtype
        + b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb"
    )


def test_python2_str_array_data_is_read(tmp_path: Path) -> None:
    arrays = {"v_template": np.linspace(-1, 1, 12).reshape(4, 3), "f": np.array([[0, 1, 2], [2, 3, 0]], dtype=np.uint32)}
    body = b"".join(b"U" + bytes([len(k)]) + k.encode() + python2_array_opcodes(v) for k, v in arrays.items())
    path = tmp_path / "py2.pkl"
    path.write_bytes(b"\x80\x02}(" + body + b"u.")
    loaded = load_pickle(path)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == value.dtype


def test_garbage_bytes_are_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(bytes(range(7, 200)))
    with pytest.raises(ModelFileError, match=r"generic_model\.pkl: (is not a readable pickle|could not be unpickled)"):
        load_flame_model(path)
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"generic_model\.pkl: is empty"):
        load_flame_model(path)

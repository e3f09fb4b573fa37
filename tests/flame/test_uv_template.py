"""The OBJ UV template reader on small OBJ files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flamefit.flame.errors import ModelFileError
from flamefit.flame.uv_template import load_uv_template

FACES = np.array([[0, 1, 2], [0, 2, 3], [3, 2, 4]])
FT = np.array([[0, 1, 2], [0, 2, 3], [5, 4, 6]])
VT = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.25, 0.5], [0.5, 0.75], [0.125, 1.0]])


def obj_text(faces: np.ndarray = FACES, ft: np.ndarray = FT, n_vertices: int = 5, normals: bool = False) -> str:
    lines = ["# head template", "mtllib missing_material.mtl", "o head"]
    lines += [f"v {i * 0.1:.3f} {i * 0.2:.3f} 0.0" for i in range(n_vertices)]
    lines += [f"vt {u} {v}" for u, v in VT]
    if normals:
        lines += ["vn 0 0 1"]
    lines += ["usemtl skin", "s off"]
    for face, tex in zip(faces + 1, ft + 1):
        corners = [f"{v}/{t}/1" if normals else f"{v}/{t}" for v, t in zip(face, tex)]
        lines.append("f " + " ".join(corners))
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "head_template_mesh.obj", crlf: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
    return path


@pytest.mark.parametrize(("crlf", "normals"), [(False, False), (True, False), (True, True)])
def test_faces_and_uvs_are_read(tmp_path: Path, crlf: bool, normals: bool) -> None:
    uv = load_uv_template(write(tmp_path, obj_text(normals=normals), crlf=crlf), n_vertices=5, faces=FACES)
    np.testing.assert_array_equal(uv.faces, FACES)
    np.testing.assert_array_equal(uv.ft, FT)
    np.testing.assert_array_equal(uv.vt, VT)
    assert uv.n_vertices == 5 and uv.faces.dtype == np.int64 and uv.ft.dtype == np.int64
    assert uv.source.endswith("head_template_mesh.obj")


def test_wrong_vertex_count(tmp_path: Path) -> None:
    path = write(tmp_path, obj_text(n_vertices=6))
    with pytest.raises(ModelFileError, match=r"head_template_mesh\.obj: has 6 vertices but the model has 5023; is this the UV template of another model\?"):
        load_uv_template(path, n_vertices=5023)


def test_faces_differ_from_model(tmp_path: Path) -> None:
    path = write(tmp_path, obj_text())
    other = FACES.copy()
    other[2] = [3, 4, 2]
    with pytest.raises(ModelFileError, match=r"head_template_mesh\.obj: faces differ from the model's \(1 of them, first face 2\)"):
        load_uv_template(path, faces=other)
    with pytest.raises(ModelFileError, match=r"has 3 faces but the model has 2"):
        load_uv_template(path, faces=FACES[:2])


def test_quads_and_missing_uvs_are_errors(tmp_path: Path) -> None:
    quad = obj_text().replace("f 1/1 2/2 3/3", "f 1/1 2/2 3/3 4/4")
    with pytest.raises(ModelFileError, match=r"head_template_mesh\.obj: face 1 has 4 corners; only triangles are supported"):
        load_uv_template(write(tmp_path, quad))
    no_vt = "\n".join(["v 0 0 0"] * 3 + ["vt 0 0", "f 1//1 2//1 3//1"])
    with pytest.raises(ModelFileError, match=r"no_vt\.obj: faces have no texture indices"):
        load_uv_template(write(tmp_path, no_vt, name="no_vt.obj"))
    out_of_range = obj_text().replace("f 1/1 2/2 3/3", "f 1/1 2/2 3/30")
    with pytest.raises(ModelFileError, match=r"refer to texture coordinate 30 but the file has 7"):
        load_uv_template(write(tmp_path, out_of_range))
    with pytest.raises(ModelFileError, match=r"absent\.obj: file not found"):
        load_uv_template(tmp_path / "absent.obj")
    with pytest.raises(ModelFileError, match=r"empty\.obj: has 0 face and 0 'vt' lines"):
        load_uv_template(write(tmp_path, "# nothing\n", name="empty.obj"))

"""Turn a fit result (mesh.obj + its albedo texture) into one GLB for Blender, three.js or a
web viewer, with trimesh.

    python demos/fit_one_photo.py                 # first, a result to export
    python demos/export_glb.py                    # -> out/demos/fit_one_photo/astronaut/head.glb
    python demos/export_glb.py results/me --glb me.glb

The mesh is in model space (metres, y up, +z toward the viewer), which is glTF's convention too.
"""
import argparse
from pathlib import Path

import trimesh

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("result", nargs="?", type=Path, default=Path("out/demos/fit_one_photo/astronaut"),
                    help="a fit's result folder, holding mesh.obj (default: %(default)s)")
parser.add_argument("--glb", type=Path, help="the GLB to write (default: RESULT/head.glb)")
args = parser.parse_args()

obj = args.result / "mesh.obj"
if not obj.is_file():
    raise SystemExit(f"no {obj}: fit a photo first (python demos/fit_one_photo.py)")
# The MTL next to the OBJ brings the albedo PNG. glTF holds one UV per vertex, so trimesh splits
# the vertices along the UV seams (positions unchanged); process=False keeps everything else.
mesh = trimesh.load(obj, force="mesh", process=False)
has_texture = getattr(mesh.visual, "material", None) is not None and mesh.visual.uv is not None
glb = args.glb or args.result / "head.glb"
mesh.export(glb)
print(f"wrote {glb}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, "
      f"{'with' if has_texture else 'WITHOUT'} its albedo texture")

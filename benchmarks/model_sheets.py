"""Pictures of the shipped open model (ICT-FaceKit Light converted by flamefit), rendered with
flamefit's own renderer:

* ``open_model_identities.png``: the mean head, random identities drawn from N(0, I) over the
  100 identity modes (seeded), front and 3/4 views, and the first 5 modes at -2 and +2 sigma;
* ``open_model_expressions.png``: each of the 53 ARKit expression shapes at weight 1 (and
  ``jawOpen + mouthClose``, the pair ``mouthClose`` is made for), the jaw joint opened, the neck
  turned and bent, the eye joints turned;
* ``open_model_albedo.png``: the generated albedo model's mean and each component at -3 and
  +3 sigma on the neutral head (the mean also unlit), and the mean's UV atlas with and without
  its charts' borders.

Every render uses one fixed light (a constant ambient term plus a frontal directional one) on
a neutral grey background, rendered at twice the tile size and averaged down (anti-aliasing).

Example::

    python benchmarks/model_sheets.py              # writes docs/open_model_*.png
    python benchmarks/model_sheets.py --out /tmp/sheets --tile 160
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from flamefit.fitting.scene import HeadScene
from flamefit.flame.selection import select_model
from flamefit.renderer.shading import SH_CONSTANT_FACTORS
from flamefit.renderer.visualize import make_sheet, to_uint8
from flamefit.utils import write_image

BACKGROUND = 0.42  # neutral grey
AMBIENT = 0.45
DIRECTIONAL = 0.70
LIGHT_DIRECTION = (0.25, 0.35, 1.0)  # toward the light: frontal, a little from above and image right
SUPERSAMPLE = 2
YAW_34 = 0.5  # radians, the 3/4 view
SEED = 0
DOCS = Path(__file__).resolve().parents[1] / "docs"

# Framings: orthographic [s, tx, ty] (model x, y in metres -> crop [-1, 1] as s * (x + t)).
HEAD = (6.0, 0.0, 0.02)  # the whole head and neck
FACE = (7.6, 0.0, -0.005)  # the head, cut at the neck
CLOSE = (10.5, 0.0, 0.005)  # brows to chin


def fixed_light(batch: int = 1, ambient: float = AMBIENT, directional: float = DIRECTIONAL) -> torch.Tensor:
    """``(B, 9, 3)`` SH light whose shading is ``ambient + directional * (n . d)``."""
    d = torch.tensor(LIGHT_DIRECTION, dtype=torch.float32)
    d = d / d.norm()
    light = torch.zeros(batch, 9, 3)
    light[:, 0, :] = ambient / SH_CONSTANT_FACTORS[0]
    light[:, 1:4, :] = (directional * d / SH_CONSTANT_FACTORS[1])[:, None]
    return light


class Painter:
    """Renders batches of parameter variations of the open model as uint8 tiles."""

    def __init__(self, tile: int, batch: int = 8):
        self.files = select_model(open_model=True)  # the shipped model, even when FLAME is present
        self.scene = HeadScene.from_model_files(self.files, n_shape=100, n_expression=53, n_texture=12)
        self.scene.eval()
        self.tile = tile
        self.batch = batch
        with np.load(self.files.model, allow_pickle=False) as data:
            self.expression_names = [str(n) for n in data["expression_names"]]
        with np.load(self.files.texture, allow_pickle=False) as texture:
            names = str(texture["meta_components"]) if "meta_components" in texture.files else ""
        self.texture_names = [n.strip() for n in names.split(";")] if names else []

    def params(self, n: int, framing=HEAD):
        p = self.scene.initial_parameters(n, "cpu")
        p.light = fixed_light(n)
        p.camera = torch.tensor([framing], dtype=torch.float32).expand(n, 3).clone()
        return p

    def render(self, params) -> list[np.ndarray]:
        """Tiles ``(tile, tile, 3)`` uint8, rendered in chunks of ``batch``."""
        size = self.tile * SUPERSAMPLE
        n = params.shape.shape[0]
        tiles = []
        with torch.no_grad():
            for start in range(0, n, self.batch):
                chunk = type(params)(**{k: v[start:start + self.batch] for k, v in params.tensors().items()})
                out = self.scene.render(chunk, size)
                image = out.image.clamp(0.0, 1.0) + (1.0 - out.alpha) * BACKGROUND
                image = torch.nn.functional.avg_pool2d(image, SUPERSAMPLE)
                tiles.extend(to_uint8(im) for im in image)
        return tiles

    def atlas(self, outlines: bool = False) -> np.ndarray:
        """The albedo mean's UV atlas, resized to a tile; ``outlines`` draws the UV charts'
        borders (texture-coordinate edges used by one triangle only)."""
        with torch.no_grad():
            texture = self.scene.albedo(torch.zeros(1, self.scene.albedo.n_components))[0].clamp(0.0, 1.0)
        image = cv2.resize(to_uint8(texture), (self.tile, self.tile), interpolation=cv2.INTER_AREA)
        if outlines:
            ft = self.scene.ft.numpy()
            edges = np.sort(np.concatenate([ft[:, [0, 1]], ft[:, [1, 2]], ft[:, [2, 0]]]), axis=1)
            unique, counts = np.unique(edges, axis=0, return_counts=True)
            vt = self.scene.vt.numpy()
            shift = 4  # sub-pixel drawing
            points = np.stack([vt[:, 0], 1.0 - vt[:, 1]], axis=1) * self.tile * (1 << shift)
            lines = [points[e].round().astype(np.int32) for e in unique[counts == 1]]
            layer = image.copy()
            cv2.polylines(layer, lines, False, (30, 30, 30), 1, cv2.LINE_AA, shift)
            image = cv2.addWeighted(layer, 0.6, image, 0.4, 0.0)
        return image


def yaw(params, indices, angle: float = YAW_34):
    params.pose[indices, 1] = angle  # global pose, axis-angle about y
    return params


def titled(sheet: np.ndarray, title: str) -> np.ndarray:
    """The sheet under a white strip with ``title``."""
    height = 34
    strip = np.full((height, sheet.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, sheet], axis=0)


def identities_sheet(painter: Painter, n_random: int = 8, n_turned: int = 4, n_modes: int = 5) -> np.ndarray:
    """Mean, modes 1..n_modes at -2 and +2 sd, random N(0, I) identities front and 3/4."""
    generator = torch.Generator().manual_seed(SEED)
    n_shape = painter.scene.flame.n_shape
    random_codes = torch.randn(n_random, n_shape, generator=generator)
    shapes, labels, turned = [], [], []

    def add(code, label, turn=False):
        shapes.append(code)
        labels.append(label)
        turned.append(turn)

    zero = torch.zeros(n_shape)
    add(zero, "mean")
    add(zero, "mean, 3/4")
    turned[-1] = True
    for m in range(n_modes):
        for sign in (-2.0, 2.0):
            code = zero.clone()
            code[m] = sign
            add(code, f"mode {m + 1} {sign:+.0f} sd")
    for i in range(n_random):
        add(random_codes[i], f"random #{i + 1}")
    for i in range(n_turned):
        add(random_codes[i], f"random #{i + 1}, 3/4", True)
    params = painter.params(len(shapes))
    params.shape = torch.stack(shapes)
    yaw(params, [i for i, t in enumerate(turned) if t])
    sheet = make_sheet(painter.render(params), labels, columns=4)
    return titled(sheet, f"{n_shape} identity modes (unit variance); random: N(0, I), seed {SEED}; "
                         "mean albedo")


def expressions_sheet(painter: Painter) -> np.ndarray:
    """Neutral, every expression shape at weight 1, then the joints."""
    names = painter.expression_names
    index = {name: i for i, name in enumerate(names)}
    labels = ["neutral"] + names
    params = painter.params(len(labels) + 6, CLOSE)
    for i in range(len(names)):
        params.expression[1 + i, i] = 1.0
    extra = len(names) + 1
    if "jawOpen" in index and "mouthClose" in index:  # mouthClose is made to go with jawOpen
        params.expression[extra, [index["jawOpen"], index["mouthClose"]]] = 1.0
        labels.append("jawOpen + mouthClose")
    else:
        labels.append("neutral")
    # pose: global 0:3, neck 3:6, jaw 6:9, left eye 9:12, right eye 12:15 (axis-angle)
    # (pose entries, angle, label, framing): the jaw and neck tiles get a wider frame
    poses = [(6, 0.35, "jaw joint 0.35 rad", FACE), (4, 0.5, "neck yaw 0.5 rad", FACE),
             (3, 0.3, "neck pitch 0.3 rad", FACE), ([10, 13], 0.3, "eye joints yaw 0.3", CLOSE),
             ([9, 12], 0.25, "eye joints pitch 0.25", CLOSE)]
    for row, (entries, angle, label, framing) in enumerate(poses, start=extra + 1):
        params.pose[row, entries] = angle
        params.camera[row] = torch.tensor(framing)
        labels.append(label)
    sheet = make_sheet(painter.render(params), labels, columns=6)
    return titled(sheet, f"{len(names)} ARKit expression shapes at weight 1, and the joints")


def albedo_sheet(painter: Painter, sigma: float = 3.0) -> np.ndarray:
    """Mean (lit, unlit, UV atlas) and each component at -sigma and +sigma, fixed light."""
    k = painter.scene.albedo.n_components
    names = painter.texture_names if len(painter.texture_names) == k else [f"component {i + 1}" for i in range(k)]
    textures, labels = [torch.zeros(k), torch.zeros(k)], ["mean", "mean, unlit"]
    for i in range(k):
        for sign in (-sigma, sigma):
            code = torch.zeros(k)
            code[i] = sign
            textures.append(code)
            labels.append(f"{i + 1} {names[i]} {sign:+.0f}sd")
    params = painter.params(len(textures), FACE)
    params.texture = torch.stack(textures)
    params.light[1] = fixed_light(1, ambient=1.0, directional=0.0)[0]
    tiles = painter.render(params)
    tiles[2:2] = [painter.atlas(), painter.atlas(outlines=True)]
    labels[2:2] = ["mean, UV atlas", "UV atlas, chart borders"]
    sheet = make_sheet(tiles, labels, columns=4)
    return titled(sheet, f"generated albedo model (not measured): mean and {k} components at "
                         f"-{sigma:.0f} and +{sigma:.0f} sd")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split(":\n")[0] + ".",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DOCS, help="output folder (default: the repository's docs/)")
    parser.add_argument("--tile", type=int, default=224, help="tile side in pixels (default 224)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    painter = Painter(args.tile)
    print(f"model: {painter.files.describe()} ({painter.files.folder})")
    for name, build in (("open_model_identities.png", identities_sheet),
                        ("open_model_expressions.png", expressions_sheet),
                        ("open_model_albedo.png", albedo_sheet)):
        start = time.perf_counter()
        sheet = build(painter)
        path = write_image(args.out / name, sheet)
        print(f"wrote {path} ({sheet.shape[1]}x{sheet.shape[0]}, {path.stat().st_size / 1e6:.2f} MB, "
              f"{time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()

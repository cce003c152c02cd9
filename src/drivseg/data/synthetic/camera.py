"""Pinhole camera (metres -> pixels) and the canvas that rasterises each shape into image and mask."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from drivseg.data.synthetic.labels import PAVEMENT, ROAD, SKY
from drivseg.data.synthetic.palette import RGB

Point = tuple[float, float]
Vec3 = tuple[float, float, float]

NEAR = 0.25  # m; ground polygons are clipped here so projections stay finite
MIN_OBJECT_DEPTH = 1.5  # m; closer objects would fill the frame
MAX_OBJECT_DEPTH = 260.0  # m; farther objects are below a pixel
OPEN_STREET_END = 900.0  # m; streets without a closing wall run (almost) to the vanishing point


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking down +Z; X right, Y up, ground at Y=0 (metres -> pixels)."""

    focal: float  # px
    cx: float  # vanishing point column (px)
    cy: float  # horizon row (px)
    height: float  # m above the ground
    x: float  # m
    z: float  # m

    def depth(self, z: float) -> float:
        return max(z - self.z, NEAR)

    def scale(self, z: float) -> float:
        """Pixels per metre at world depth ``z``."""
        return self.focal / self.depth(z)

    def project(self, x: float, y: float, z: float) -> Point:
        d = self.depth(z)
        return self.cx + self.focal * (x - self.x) / d, self.cy + self.focal * (self.height - y) / d

    def quad_x(self, x: float, y0: float, y1: float, z0: float, z1: float) -> list[Point]:
        """A rectangle in the plane X = x (facades, fences, car sides)."""
        p = self.project
        return [p(x, y0, z0), p(x, y1, z0), p(x, y1, z1), p(x, y0, z1)]

    def quad_y(self, y: float, x0: float, x1: float, z0: float, z1: float) -> list[Point]:
        """A rectangle in the plane Y = y (road, markings, roofs, shadows)."""
        p = self.project
        return [p(x0, y, z0), p(x1, y, z0), p(x1, y, z1), p(x0, y, z1)]

    def quad_z(self, z: float, x0: float, x1: float, y0: float, y1: float) -> list[Point]:
        """A rectangle in the plane Z = z (walls facing the camera, car backs)."""
        p = self.project
        return [p(x0, y0, z), p(x1, y0, z), p(x1, y1, z), p(x0, y1, z)]


class Canvas:
    """An image and its mask drawn by the same calls, so every shape has exact labels."""

    def __init__(self, image: np.ndarray) -> None:
        self.height, self.width = image.shape[:2]
        self.image = Image.fromarray(image)
        self.mask = Image.new("L", (self.width, self.height), SKY)
        self._img = ImageDraw.Draw(self.image)
        self._lab = ImageDraw.Draw(self.mask)

    def polygon(self, points: Sequence[Point], cls: int, colour: RGB) -> None:
        self._img.polygon(points, fill=colour)
        self._lab.polygon(points, fill=cls)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, cls: int, colour: RGB) -> None:
        box = _ellipse_box(cx, cy, rx, ry)
        self._img.ellipse(box, fill=colour)
        self._lab.ellipse(box, fill=cls)

    def line(self, points: Sequence[Point], width: float, cls: int, colour: RGB) -> None:
        w = max(1, round(width))
        self._img.line(points, fill=colour, width=w, joint="curve")
        self._lab.line(points, fill=cls, width=w, joint="curve")

    def bar(self, x: float, y_top: float, y_bottom: float, width: float, cls: int, colour: RGB) -> None:
        """A vertical bar at least one pixel wide, so far poles do not vanish."""
        half = max(width, 1.0) / 2
        x0 = round(x - half)
        box = (x0, round(y_top), max(x0, round(x + half) - 1), max(round(y_top), round(y_bottom)))
        self._img.rectangle(box, fill=colour)
        self._lab.rectangle(box, fill=cls)

    # image-only details: they are drawn strictly inside a shape that already carries the label
    def paint(self, points: Sequence[Point], colour: RGB) -> None:
        self._img.polygon(points, fill=colour)

    def paint_line(self, points: Sequence[Point], width: float, colour: RGB) -> None:
        self._img.line(points, fill=colour, width=max(1, round(width)))

    def paint_ellipse(self, cx: float, cy: float, rx: float, ry: float, colour: RGB) -> None:
        self._img.ellipse(_ellipse_box(cx, cy, rx, ry), fill=colour)

    def darken_ground(self, shade: Image.Image) -> None:
        """Multiply road and pavement pixels by ``1 - shade``; objects drawn later stay lit."""
        img = np.asarray(self.image, dtype=np.float32)
        lab = np.asarray(self.mask)
        factor = 1.0 - np.asarray(shade, dtype=np.float32) / 255.0 * ((lab == ROAD) | (lab == PAVEMENT))
        self.image = Image.fromarray((img * factor[..., None]).astype(np.uint8))
        self._img = ImageDraw.Draw(self.image)


def _ellipse_box(cx: float, cy: float, rx: float, ry: float) -> tuple[float, float, float, float]:
    rx, ry = max(rx, 0.5), max(ry, 0.5)
    return (cx - rx, cy - ry, cx + rx, cy + ry)


def projected_circle(cam: Camera, centre: Vec3, u: Vec3, v: Vec3, radius: float, n: int = 14) -> list[Point]:
    """A 3D circle spanned by unit vectors ``u`` and ``v``, projected as an n-gon."""
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        c, s = math.cos(a) * radius, math.sin(a) * radius
        pts.append(cam.project(centre[0] + c * u[0] + s * v[0], centre[1] + c * u[1] + s * v[1],
                               centre[2] + c * u[2] + s * v[2]))  # fmt: skip
    return pts

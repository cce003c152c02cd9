"""Procedural driving scenes in CamVid's 11 classes: the embedded dataset that needs no download.

A scene is a small 3D street (road, pavements, building rows, trees, fences, poles, signs, cars,
pedestrians, cyclists) seen through a pinhole camera. Every shape is projected once and rasterised
by the same PIL call into the image and into the mask, so labels are exact; lane markings, windows,
shadows, textures and noise touch the image only and never cross a label boundary.

Frames of a sequence share a ``SceneStyle`` (colours, street layout, static objects) while the
camera drives forward and traffic moves, like the short video sequences of CamVid. Files are named
``synthNN_FFFFFF.png`` so ``sequence_from_prefix`` keeps a sequence inside one split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional, Sequence, Union

import cv2
import numpy as np
from PIL import Image, ImageDraw

from drivseg.data.camvid import CAMVID_CLASSES, CAMVID_SPEC, find_segnet_pairs
from drivseg.data.source import DatasetSource
from drivseg.errors import ConfigError, DataError

GENERATOR_VERSION = 1
DEFAULT_SEED = 0
DEFAULT_SIZE = (144, 192)  # (H, W)
DEFAULT_COUNTS: Mapping[str, int] = MappingProxyType({"train": 240, "val": 60, "test": 60})
DEFAULT_FRAMES_PER_SEQUENCE = 10
MIN_SIZE = 32
MAX_FRAMES_PER_SEQUENCE = 64
MANIFEST = "dataset.json"

_ID = {name: i for i, name in enumerate(CAMVID_CLASSES)}
SKY, BUILDING, POLE, ROAD = _ID["Sky"], _ID["Building"], _ID["Pole"], _ID["Road"]
PAVEMENT, TREE, SIGN, FENCE = _ID["Pavement"], _ID["Tree"], _ID["SignSymbol"], _ID["Fence"]
CAR, PEDESTRIAN, BICYCLIST = _ID["Car"], _ID["Pedestrian"], _ID["Bicyclist"]

RGB = tuple[int, int, int]
Point = tuple[float, float]
Vec3 = tuple[float, float, float]

_NEAR = 0.25  # m; ground polygons are clipped here so projections stay finite
_MIN_OBJECT_DEPTH = 1.5  # m; closer objects would fill the frame
_MAX_OBJECT_DEPTH = 260.0  # m; farther objects are below a pixel
_OPEN_STREET_END = 900.0  # m; streets without a closing wall run (almost) to the vanishing point

# base colours; every use is jittered so no class owns a colour
_FACADES = (
    (196, 178, 150), (150, 82, 62), (218, 212, 200), (140, 138, 134), (206, 186, 120),
    (104, 84, 72), (168, 178, 186), (180, 120, 90), (230, 225, 210), (120, 110, 100),
)  # fmt: skip
_GLASS = ((38, 46, 56), (70, 86, 104), (96, 112, 128), (52, 48, 44), (120, 132, 140))
_PAINT = (
    (235, 235, 232), (24, 24, 28), (160, 162, 166), (150, 24, 28), (30, 52, 120), (40, 70, 50),
    (200, 170, 40), (90, 90, 96), (120, 40, 90), (210, 100, 30), (200, 200, 205), (60, 60, 64),
)  # fmt: skip
_CLOTHES = (
    (30, 30, 34), (60, 60, 70), (28, 40, 90), (120, 30, 30), (200, 200, 195), (90, 70, 50),
    (60, 90, 60), (150, 120, 90), (170, 60, 100), (40, 90, 140), (210, 180, 60), (110, 110, 115),
)  # fmt: skip
_SKIN = ((224, 184, 150), (190, 140, 100), (140, 96, 64), (96, 64, 44))
_LEAVES = ((62, 96, 40), (44, 80, 36), (82, 110, 50), (70, 90, 30), (110, 118, 54), (52, 70, 44))
_FENCES = ((140, 100, 60), (50, 55, 60), (220, 220, 215), (60, 90, 60), (110, 110, 100), (150, 130, 110))
_POLES = ((110, 110, 112), (40, 60, 50), (100, 80, 60), (160, 160, 158), (45, 45, 48))
_PAVEMENTS = ((150, 146, 140), (150, 112, 100), (176, 166, 146), (120, 118, 116))
_HAIR = ((30, 24, 20), (90, 60, 30), (160, 130, 80), (60, 60, 60))
_SIGN_SHAPES = ("rect", "circle", "triangle", "diamond", "lights")
_SKIES = (  # (top, horizon): clear, overcast, hazy
    ((88, 136, 198), (190, 208, 228)), ((168, 174, 186), (222, 224, 228)), ((120, 150, 190), (230, 220, 200)),
)  # fmt: skip

# per-class texture strength (grey levels): fine grain and blotches; leaves are busy, sky is smooth
_FINE = np.zeros(256, np.float32)
_BLOTCH = np.zeros(256, np.float32)
for _cls, _fine, _blotch in (
    (SKY, 1.5, 3), (BUILDING, 4, 6), (POLE, 3, 2), (ROAD, 5, 4), (PAVEMENT, 5, 5), (TREE, 20, 14),
    (SIGN, 2, 2), (FENCE, 6, 5), (CAR, 3, 3), (PEDESTRIAN, 4, 3), (BICYCLIST, 4, 3),
):  # fmt: skip
    _FINE[_cls], _BLOTCH[_cls] = _fine, _blotch


# ---------------------------------------------------------------------------------------------
# camera and canvas


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera looking down +Z; X right, Y up, ground at Y=0 (metres -> pixels)."""

    focal: float  # px
    cx: float  # vanishing point column (px)
    cy: float  # horizon row (px)
    height: float  # m above the ground
    x: float  # m
    z: float  # m

    def depth(self, z: float) -> float:
        return max(z - self.z, _NEAR)

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


class _Canvas:
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


def _box(cx: float, cy: float, rx: float, ry: float) -> list[Point]:
    return [(cx - rx, cy - ry), (cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]


def _ellipse_box(cx: float, cy: float, rx: float, ry: float) -> tuple[float, float, float, float]:
    rx, ry = max(rx, 0.5), max(ry, 0.5)
    return (cx - rx, cy - ry, cx + rx, cy + ry)


def _shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, c * factor))) for c in colour)  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, colour: RGB, amount: float = 16.0) -> RGB:
    shift = rng.normal(0, amount) * 0.6  # brightness, shared by the channels
    out = (int(np.clip(c + shift + rng.normal(0, amount * 0.5), 0, 255)) for c in colour)
    return tuple(out)  # type: ignore[return-value]


def _pick(rng: np.random.Generator, options: Sequence) -> object:
    return options[int(rng.integers(len(options)))]


def _circle(cam: _Camera, centre: Vec3, u: Vec3, v: Vec3, radius: float, n: int = 14) -> list[Point]:
    """A 3D circle spanned by unit vectors ``u`` and ``v``, projected as an n-gon."""
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        c, s = math.cos(a) * radius, math.sin(a) * radius
        pts.append(cam.project(centre[0] + c * u[0] + s * v[0], centre[1] + c * u[1] + s * v[1],
                               centre[2] + c * u[2] + s * v[2]))  # fmt: skip
    return pts


# ---------------------------------------------------------------------------------------------
# the world: static background, ground shadows and depth-sorted objects


@dataclass(frozen=True)
class _Building:
    """A facade in the plane X = x between z0 and z1, windows on a grid of floors and bays."""

    x: float
    z0: float
    z1: float
    height: float
    colour: RGB
    glass: RGB
    trim: RGB
    ground_floor: float
    floor: float
    bay: float
    window_w: float
    window_h: float
    shop: bool

    def draw(self, canvas: _Canvas, cam: _Camera) -> None:
        za = max(self.z0, cam.z + _NEAR)
        if self.z1 <= za or self.z0 - cam.z > _OPEN_STREET_END:
            return
        canvas.polygon(cam.quad_x(self.x, 0, self.height, za, self.z1), BUILDING, self.colour)
        canvas.paint(cam.quad_x(self.x, self.height - 0.6, self.height, za, self.z1), self.trim)
        if self.z0 - cam.z > 250:
            return
        bays = np.arange(self.z0 + self.bay / 2, self.z1 - self.bay / 3, self.bay)
        if self.shop:
            frames = _shade(self.glass, 0.6)
            for zc in bays:
                z0, z1 = zc - 0.42 * self.bay, zc + 0.42 * self.bay
                if z0 > za:
                    top = self.ground_floor - 0.7
                    canvas.paint(cam.quad_x(self.x, 0.4, top, z0, z1), frames)
                    canvas.paint(cam.quad_x(self.x, 0.5, top - 0.1, z0 + 0.1, z1 - 0.1), self.glass)
        else:
            for zc in bays[1::3]:
                if zc - 0.6 > za:
                    canvas.paint(cam.quad_x(self.x, 0, 2.2, zc - 0.6, zc + 0.6), _shade(self.colour, 0.45))
        y = self.ground_floor + 0.9
        while y + self.window_h < self.height - 0.7:
            for zc in bays:
                z0, z1 = zc - self.window_w / 2, zc + self.window_w / 2
                if z0 <= za:
                    continue
                quad = cam.quad_x(self.x, y, y + self.window_h, z0, z1)
                if abs(quad[2][0] - quad[0][0]) >= 0.6:
                    canvas.paint(quad, self.glass)
            y += self.floor


@dataclass(frozen=True)
class _Block:
    """A building facing the camera at depth z: the wall closing the street."""

    x0: float
    x1: float
    z: float
    height: float
    colour: RGB
    glass: RGB
    bay: float

    def draw(self, canvas: _Canvas, cam: _Camera) -> None:
        if self.z - cam.z < 5:
            return
        canvas.polygon(cam.quad_z(self.z, self.x0, self.x1, 0, self.height), BUILDING, self.colour)
        if cam.scale(self.z) * 1.2 < 1.0:
            return
        y = 3.4
        while y + 1.4 < self.height - 0.5:
            for xc in np.arange(self.x0 + self.bay / 2, self.x1 - self.bay / 3, self.bay):
                half = 0.35 * self.bay
                canvas.paint(cam.quad_z(self.z, xc - half, xc + half, y, y + 1.4), self.glass)
            y += 3.2


@dataclass(frozen=True)
class _Fence:
    """An opaque fence panel in the plane X = x; slats are painted on it."""

    x: float
    z0: float
    z1: float
    height: float
    colour: RGB
    slat: float

    def draw(self, canvas: _Canvas, cam: _Camera) -> None:
        za = max(self.z0, cam.z + _NEAR)
        if self.z1 <= za or self.z0 - cam.z > _MAX_OBJECT_DEPTH:
            return
        canvas.polygon(cam.quad_x(self.x, 0, self.height, za, self.z1), FENCE, self.colour)
        dark = _shade(self.colour, 0.62)
        canvas.paint(cam.quad_x(self.x, self.height * 0.78, self.height * 0.88, za, self.z1), dark)
        z = self.z0 + self.slat
        while z < self.z1:
            if z > za + 0.05 and z - cam.z < 40:
                top, bottom = cam.project(self.x, self.height, z), cam.project(self.x, 0, z)
                canvas.paint_line([top, bottom], 1, dark)
            z += self.slat


@dataclass(frozen=True)
class _Tree:
    """Trunk plus a canopy of overlapping blobs (offsets and radii in metres)."""

    x: float
    z: float
    trunk_h: float
    trunk_w: float
    trunk: RGB
    blobs: tuple[tuple[float, float, float, float, RGB], ...]  # dx, dy, rx, ry, colour

    def position(self, frame: int) -> tuple[float, float]:
        return self.x, self.z

    def draw(self, canvas: _Canvas, cam: _Camera, frame: int) -> None:
        s = cam.scale(self.z)
        bx, by = cam.project(self.x, 0, self.z)
        canvas.bar(bx, by - (self.trunk_h + 0.5) * s, by, self.trunk_w * s, TREE, self.trunk)
        for dx, dy, rx, ry, colour in self.blobs:
            canvas.ellipse(bx + dx * s, by - (self.trunk_h + dy) * s, rx * s, ry * s, TREE, colour)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: _Camera, frame: int, sun: float) -> None:
        r = max(b[2] for b in self.blobs)
        pts = _circle(cam, (self.x + sun * (self.trunk_h + r), 0, self.z), (1, 0, 0), (0, 0, 1), r, 10)
        draw.polygon(pts, fill=80)


@dataclass(frozen=True)
class _Pole:
    """A lamp post or utility pole; ``arm`` reaches over the road (signed metres along X)."""

    x: float
    z: float
    height: float
    width: float
    colour: RGB
    arm: float

    def position(self, frame: int) -> tuple[float, float]:
        return self.x, self.z

    def draw(self, canvas: _Canvas, cam: _Camera, frame: int) -> None:
        s = cam.scale(self.z)
        bx, by = cam.project(self.x, 0, self.z)
        canvas.bar(bx, by - self.height * s, by, self.width * s, POLE, self.colour)
        if self.arm:
            start = cam.project(self.x, self.height - 0.5, self.z)
            end = cam.project(self.x + self.arm, self.height, self.z)
            canvas.line([start, end], 0.12 * s, POLE, self.colour)
            canvas.ellipse(end[0], end[1] + 0.1 * s, 0.3 * s, 0.12 * s, POLE, _shade(self.colour, 0.7))

    def shadow(self, draw: ImageDraw.ImageDraw, cam: _Camera, frame: int, sun: float) -> None:
        pass


@dataclass(frozen=True)
class _Sign:
    """A traffic sign or traffic light (SignSymbol) on its own pole (Pole)."""

    x: float
    z: float
    pole_h: float
    size: float
    shape: str  # rect | circle | triangle | diamond | lights
    face: RGB
    inner: RGB
    pole: RGB

    def position(self, frame: int) -> tuple[float, float]:
        return self.x, self.z

    def draw(self, canvas: _Canvas, cam: _Camera, frame: int) -> None:
        s = cam.scale(self.z)
        bx, by = cam.project(self.x, 0, self.z)
        canvas.bar(bx, by - (self.pole_h + 0.1) * s, by, 0.1 * s, POLE, self.pole)
        h = self.size * (2.2 if self.shape == "lights" else 1.0)
        r = max(self.size * s / 2, 1.5)
        cx, cy = bx, by - (self.pole_h + h / 2) * s
        if self.shape == "circle":
            canvas.ellipse(cx, cy, r, r, SIGN, self.face)
            canvas.paint_ellipse(cx, cy, r * 0.65, r * 0.65, self.inner)
        elif self.shape == "triangle":
            canvas.polygon([(cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8), (cx, cy - r)], SIGN, self.face)
            k = 0.5 * r
            canvas.paint([(cx - k, cy + 0.9 * k), (cx + k, cy + 0.9 * k), (cx, cy - 0.7 * k)], self.inner)
        elif self.shape == "diamond":
            canvas.polygon([(cx - r, cy), (cx, cy - r), (cx + r, cy), (cx, cy + r)], SIGN, self.face)
            k = 0.6 * r
            canvas.paint([(cx - k, cy), (cx, cy - k), (cx + k, cy), (cx, cy + k)], self.inner)
        elif self.shape == "lights":
            hh = max(h * s / 2, 2.0)
            canvas.polygon(_box(cx, cy, r, hh), SIGN, self.face)
            lit = int((self.z * 7 + frame // 4) % 3)
            for k, colour in enumerate(((210, 40, 30), (230, 170, 30), (40, 200, 90))):
                c = colour if k == lit else _shade(colour, 0.3)
                canvas.paint_ellipse(cx, cy + (k - 1) * hh * 0.62, r * 0.55, r * 0.55, c)
        else:
            canvas.polygon(_box(cx, cy, r, r), SIGN, self.face)
            arrow = [(cx - 0.45 * r, cy + 0.1 * r), (cx + 0.1 * r, cy - 0.6 * r), (cx + 0.55 * r, cy + 0.1 * r)]
            canvas.paint(arrow, self.inner)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: _Camera, frame: int, sun: float) -> None:
        pass


@dataclass(frozen=True)
class _Car:
    """A car or van: lower body box, cabin with glass, wheels; ``facing`` -1 shows its front."""

    x: float
    z: float
    speed: float  # m per frame along Z
    width: float
    length: float
    body_h: float
    cabin_h: float
    paint: RGB
    glass: RGB
    facing: int

    def position(self, frame: int) -> tuple[float, float]:
        return self.x, self.z + self.speed * frame

    def draw(self, canvas: _Canvas, cam: _Camera, frame: int) -> None:
        x, z = self.position(frame)
        xl, xr, z1 = x - self.width / 2, x + self.width / 2, z + self.length
        side = xl if cam.x < xl else xr if cam.x > xr else None
        s = cam.scale(z)
        dark, tyre = _shade(self.paint, 0.72), (24, 24, 26)
        top_y = self.body_h + self.cabin_h
        # tyres under the near end, partly hidden by the bumper drawn after them
        for tx in (xl + 0.05, xr - 0.3):
            canvas.polygon(cam.quad_z(z + 0.15, tx, tx + 0.25, 0, 0.45), CAR, tyre)
        if side is not None:
            canvas.polygon(cam.quad_x(side, 0.28, self.body_h, z, z1), CAR, dark)
            if self.cabin_h > 0:
                p = cam.project
                c0, c1 = z + 0.25 * self.length, z + 0.8 * self.length
                trap = [p(side, self.body_h, c0 - 0.35), p(side, top_y, c0 + 0.3), p(side, top_y, c1 - 0.2),
                        p(side, self.body_h, c1 + 0.3)]  # fmt: skip
                canvas.polygon(trap, CAR, dark)
                inset = [p(side, self.body_h + 0.08, c0 - 0.1), p(side, top_y - 0.08, c0 + 0.4),
                         p(side, top_y - 0.08, c1 - 0.3), p(side, self.body_h + 0.08, c1 + 0.1)]  # fmt: skip
                canvas.paint(inset, self.glass)
            else:  # van: a window band at the cab end
                w0 = z1 - 1.4 if self.facing > 0 else z + 0.3
                band = cam.quad_x(side, self.body_h * 0.62, self.body_h * 0.9, w0, w0 + 1.1)
                canvas.paint(band, self.glass)
            axis = (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)
            for wz in (z + 0.8, z1 - 0.8):
                canvas.polygon(_circle(cam, (side, 0.33, wz), *axis, 0.33, 12), CAR, tyre)
                canvas.paint(_circle(cam, (side, 0.33, wz), *axis, 0.15, 8), (120, 120, 124))
        if self.body_h < cam.height:  # the camera sees the bonnet / boot lid
            lid_end = z1 if self.cabin_h == 0 else z + 0.3 * self.length
            canvas.polygon(cam.quad_y(self.body_h, xl, xr, z, lid_end), CAR, _shade(self.paint, 1.08))
        if self.cabin_h > 0:
            c0 = z + 0.25 * self.length
            if top_y < cam.height:
                canvas.polygon(cam.quad_y(top_y, xl + 0.15, xr - 0.15, c0 + 0.3, z + 0.8 * self.length - 0.2),
                               CAR, _shade(self.paint, 1.1))  # fmt: skip
            p = cam.project
            screen = [p(xl + 0.08, self.body_h, c0 - 0.35), p(xr - 0.08, self.body_h, c0 - 0.35),
                      p(xr - 0.15, top_y, c0 + 0.3), p(xl + 0.15, top_y, c0 + 0.3)]  # fmt: skip
            canvas.polygon(screen, CAR, self.paint)
            low, high = self.body_h + 0.06, top_y - 0.07
            glass = [p(xl + 0.2, low, c0 - 0.3), p(xr - 0.2, low, c0 - 0.3),
                     p(xr - 0.24, high, c0 + 0.25), p(xl + 0.24, high, c0 + 0.25)]  # fmt: skip
            canvas.paint(glass, self.glass)
        canvas.polygon(cam.quad_z(z, xl, xr, 0.3, self.body_h), CAR, self.paint)
        lamp = (190, 20, 24) if self.facing > 0 else (235, 232, 210)
        ly0, ly1 = self.body_h * 0.62, self.body_h * 0.8
        canvas.paint(cam.quad_z(z, xl + 0.06, xl + 0.36, ly0, ly1), lamp)
        canvas.paint(cam.quad_z(z, xr - 0.36, xr - 0.06, ly0, ly1), lamp)
        if self.cabin_h == 0:  # van doors
            panel = cam.quad_z(z, xl + 0.15, xr - 0.15, self.body_h * 0.85, self.body_h - 0.1)
            canvas.paint(panel, _shade(self.paint, 0.85))
            canvas.paint_line([cam.project(x, 0.4, z), cam.project(x, self.body_h - 0.15, z)], 0.03 * s, dark)
        plate = (220, 214, 170) if self.facing > 0 else (230, 230, 230)
        canvas.paint(cam.quad_z(z, x - 0.26, x + 0.26, 0.38, 0.5), plate)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: _Camera, frame: int, sun: float) -> None:
        x, z = self.position(frame)
        if z - cam.z > _MIN_OBJECT_DEPTH:
            hw = self.width / 2 + 0.15
            draw.polygon(cam.quad_y(0, x - hw + sun, x + hw + sun, z - 0.15, z + self.length), fill=140)


@dataclass(frozen=True)
class _Pedestrian:
    """A walker drawn as a flat figure; ``stride`` 0 faces the camera, 1 walks across the view."""

    x: float
    z: float
    speed: float
    height: float
    stride: float
    phase: float
    top: RGB
    legs: RGB
    skin: RGB
    hair: RGB

    def position(self, frame: int) -> tuple[float, float]:
        return self.x, self.z + self.speed * frame

    def draw(self, canvas: _Canvas, cam: _Camera, frame: int) -> None:
        x, z = self.position(frame)
        s = cam.scale(z) * self.height / 1.75  # body proportions below are for a 1.75 m adult
        bx, by = cam.project(x, 0, z)
        swing = math.sin(self.phase + 0.9 * frame) * self.stride
        hip, shoulder = by - 0.92 * s, by - 1.44 * s
        for side in (-1, 1):
            foot = bx + side * 0.1 * s + side * swing * 0.28 * s
            canvas.line([(bx + side * 0.08 * s, hip), (foot, by - 0.04 * s)], 0.15 * s, PEDESTRIAN, self.legs)
        torso = [(bx - 0.17 * s, hip + 0.04 * s), (bx + 0.17 * s, hip + 0.04 * s),
                 (bx + 0.22 * s, shoulder), (bx - 0.22 * s, shoulder)]  # fmt: skip
        canvas.polygon(torso, PEDESTRIAN, self.top)
        for side in (-1, 1):
            hand = (bx + side * (0.26 + 0.06 * swing * side) * s, by - 0.82 * s)
            canvas.line([(bx + side * 0.2 * s, shoulder + 0.05 * s), hand], 0.09 * s, PEDESTRIAN, self.top)
        hx, hy, hr = bx, by - 1.6 * s, 0.11 * s
        canvas.ellipse(hx, hy, hr * 0.85, hr, PEDESTRIAN, self.skin)
        if hr >= 2:
            canvas.paint_ellipse(hx, hy - hr * 0.45, hr * 0.62, hr * 0.45, self.hair)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: _Camera, frame: int, sun: float) -> None:
        x, z = self.position(frame)
        draw.polygon(cam.quad_y(0, x - 0.25, x + 0.25 + sun * 1.2, z - 0.2, z + 0.25), fill=90)


@dataclass(frozen=True)
class _Cyclist:
    """A rider on a bicycle heading ``heading`` radians from +Z towards +X (0 = riding away)."""

    x: float
    z: float
    vx: float
    vz: float
    heading: float
    frame_colour: RGB
    top: RGB
    legs: RGB
    skin: RGB
    helmet: RGB
    phase: float

    def position(self, frame: int) -> tuple[float, float]:
        return self.x + self.vx * frame, self.z + self.vz * frame

    def draw(self, canvas: _Canvas, cam: _Camera, frame: int) -> None:
        x, z = self.position(frame)
        fwd = (math.sin(self.heading), 0.0, math.cos(self.heading))
        right = (fwd[2], 0.0, -fwd[0])
        up = (0.0, 1.0, 0.0)
        s = cam.scale(z)

        def at(f: float, u: float, r: float = 0.0) -> Vec3:
            return (x + f * fwd[0] + r * right[0], u, z + f * fwd[2] + r * right[2])

        def p(f: float, u: float, r: float = 0.0) -> Point:
            return cam.project(*at(f, u, r))

        tyre = (28, 28, 30)
        for f in (-0.52, 0.52):
            ring = _circle(cam, at(f, 0.34), fwd, up, 0.34, 16)
            canvas.line(ring + ring[:1], 0.06 * s, BICYCLIST, tyre)
        bb, seat, bar = p(-0.02, 0.3), p(-0.24, 0.92), p(0.42, 1.0)
        canvas.line([p(-0.52, 0.34), bb, seat, p(-0.52, 0.34)], 0.05 * s, BICYCLIST, self.frame_colour)
        canvas.line([bb, p(0.34, 0.86), seat], 0.05 * s, BICYCLIST, self.frame_colour)
        canvas.line([p(0.52, 0.34), bar], 0.05 * s, BICYCLIST, self.frame_colour)
        crank = self.phase + 1.1 * frame
        hip_f, hip_u = -0.22, 1.0
        for side, a in ((-1, crank), (1, crank + math.pi)):
            pf, pu = -0.02 + 0.17 * math.cos(a), 0.3 + 0.17 * math.sin(a)
            kf, ku = (hip_f + pf) / 2 + 0.22, (hip_u + pu) / 2 + 0.1
            leg = [p(hip_f, hip_u, 0.1 * side), p(kf, ku, 0.12 * side), p(pf, pu, 0.12 * side)]
            canvas.line(leg, 0.13 * s, BICYCLIST, self.legs)
        shoulder = (0.14, 1.5)
        canvas.line([p(hip_f, hip_u), p(*shoulder)], 0.36 * s, BICYCLIST, self.top)
        for side in (-1, 1):
            canvas.line([p(shoulder[0], shoulder[1] - 0.04, 0.18 * side), p(0.42, 1.0, 0.25 * side)],
                        0.08 * s, BICYCLIST, self.top)  # fmt: skip
        hx, hy = p(0.24, 1.68)
        canvas.ellipse(hx, hy, 0.11 * s, 0.12 * s, BICYCLIST, self.skin)
        if 0.12 * s >= 2:
            canvas.paint_ellipse(hx, hy - 0.05 * s, 0.1 * s, 0.07 * s, self.helmet)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: _Camera, frame: int, sun: float) -> None:
        x, z = self.position(frame)
        draw.polygon(cam.quad_y(0, x - 0.25, x + 0.25 + sun, z - 0.5, z + 0.5), fill=80)


_Object = Union[_Tree, _Pole, _Sign, _Car, _Pedestrian, _Cyclist]


# ---------------------------------------------------------------------------------------------
# style: everything the frames of one sequence share


@dataclass(frozen=True)
class SceneStyle:
    """Camera, street layout, colours and static world shared by the frames of one sequence.

    Lengths are metres, ``focal``/``vanish_x`` are fractions of the image width and ``horizon`` a
    fraction of its height, so one style renders at any size. Build one with ``sample_style``.
    """

    focal: float
    horizon: float
    vanish_x: float
    camera_height: float
    camera_speed: float  # m per frame
    mirror: bool  # drive on the other side: image and mask flipped left-right
    road: tuple[float, float]  # X of the left and right kerb
    facades: tuple[float, float]  # X of the left and right building rows
    lane_lines: tuple[float, ...]  # X of dashed lane separators
    crossing: Optional[float]  # Z of a zebra crossing
    street_end: float  # Z where the road ends (a wall of buildings or the far distance)
    sun: float  # shadow direction along X (0 = overcast)
    sky: tuple[RGB, RGB]  # top, horizon
    clouds: float
    cloud_seed: int
    road_colour: RGB
    pavement_colour: RGB
    kerb_colour: RGB
    marking_colour: RGB
    exposure: float
    tint: tuple[float, float, float]
    noise: float
    blur: float
    background: tuple[Union[_Block, _Building], ...]  # drawn first, in this order
    garden_trees: tuple[_Tree, ...]  # behind fences, in front of facades
    fences: tuple[_Fence, ...]
    objects: tuple[_Object, ...]  # depth-sorted per frame


def sample_style(rng: np.random.Generator, max_frames: int = MAX_FRAMES_PER_SEQUENCE) -> SceneStyle:
    """Draw a random street; the world is long enough for ``max_frames`` frames of driving."""
    speed = float(rng.uniform(0.4, 1.3))
    lane = float(rng.uniform(3.0, 3.7))
    left_lanes = 1 + int(rng.random() < 0.35)
    one_way = rng.random() < 0.2
    park = (bool(rng.random() < 0.55), bool(rng.random() < 0.55))
    kerb_l = -(lane / 2 + left_lanes * lane + (2.4 if park[0] else 0.0))
    kerb_r = lane / 2 + (2.4 if park[1] else 0.0)
    walks = (float(rng.uniform(2.0, 4.5)), float(rng.uniform(2.0, 4.5)))
    # a fenced front garden on a side: fence at the pavement's edge, building set back behind it
    gardens = [bool(rng.random() < 0.45), bool(rng.random() < 0.45)]
    if not any(gardens) and rng.random() < 0.7:
        gardens[int(rng.integers(2))] = True
    setback = tuple(float(rng.uniform(2.5, 6.0)) if g else 0.0 for g in gardens)
    facade_l, facade_r = kerb_l - walks[0] - setback[0], kerb_r + walks[1] + setback[1]
    travel = speed * max_frames
    closed = rng.random() < 0.65
    street_end = float(travel + rng.uniform(70, 150)) if closed else _OPEN_STREET_END
    sunny = rng.random() < 0.5
    sun = float(rng.choice([-1, 1]) * rng.uniform(0.6, 2.0)) if sunny else 0.0
    busy = float(rng.uniform(0.7, 1.4))

    background: list = []
    if closed:
        background += _far_wall(rng, street_end)
    for side, x in ((-1, facade_l), (1, facade_r)):
        lit = 1.0 if sun == 0 else (1.12 if sun * side < 0 else 0.8)
        background += _building_row(rng, x, -10.0, street_end, lit)

    objects: list = []
    garden_trees: list = []
    fences: list = []
    view_end = min(street_end, travel + 200.0)
    for side, kerb, walk, garden in ((-1, kerb_l, walks[0], gardens[0]), (1, kerb_r, walks[1], gardens[1])):
        outer = kerb + side * walk
        if garden:
            fences += _fence_run(rng, outer + side * 0.05, view_end, min_cover=0.75)
            garden_trees += _tree_row(rng, side, outer + side * setback[side > 0] * 0.5, view_end, (5, 12))
        elif rng.random() < 0.3:  # railings along the kerb
            fences += _fence_run(rng, kerb + side * 0.35, view_end, min_cover=0.3, low=True)
        if rng.random() < 0.45 or not (garden or garden_trees):
            objects += _tree_row(rng, side, kerb + side * float(rng.uniform(0.8, 1.3)), view_end, (7, 18))
        objects += _lamp_row(rng, side, kerb + side * 0.5, view_end, lamps=rng.random() < 0.8)
        objects += _sign_row(rng, kerb + side * float(rng.uniform(0.4, 0.8)), view_end)
        objects += _pedestrians(rng, side, kerb, walk, travel, busy)
        if park[side > 0]:
            objects += _parked_cars(rng, side, kerb, view_end)
    if not fences:
        side = int(rng.choice([-1, 1]))
        kerb = kerb_l if side < 0 else kerb_r
        fences += _fence_run(rng, kerb + side * 0.35, view_end, min_cover=0.5, low=True)

    lane_lines = [-lane / 2]
    lanes = [(0.0, speed * float(rng.uniform(0.85, 1.1)), 1, rng.random() < 0.75)]
    for k in range(left_lanes):
        centre = -lane * (k + 1)
        if k:
            lane_lines.append(centre + lane / 2)
        same = one_way or (k == 1 and rng.random() < 0.3)
        v = speed * float(rng.uniform(0.8, 1.2)) if same else -float(rng.uniform(0.4, 1.4))
        lanes.append((centre, v, 1 if same else -1, True))
    for centre, v, facing, occupied in lanes:
        if occupied:
            objects += _traffic(rng, centre, v, facing, travel, view_end, busy)
    objects += _cyclists(rng, lane, kerb_l, kerb_r, park, speed, travel)

    sky = _pick(rng, _SKIES)
    crossing = float(rng.uniform(15, 60) + travel * rng.random()) if rng.random() < 0.35 else None
    if crossing is not None and rng.random() < 0.6:
        objects.append(_sign_at(rng, kerb_r + 0.5, crossing - 1.0, "lights"))
    asphalt = int(rng.uniform(70, 125))
    return SceneStyle(
        focal=float(rng.uniform(0.72, 0.95)),
        horizon=float(rng.uniform(0.36, 0.47)),
        vanish_x=float(rng.uniform(0.44, 0.56)),
        camera_height=float(rng.uniform(1.35, 1.75)),
        camera_speed=speed,
        mirror=bool(rng.random() < 0.5),
        road=(kerb_l, kerb_r),
        facades=(facade_l, facade_r),
        lane_lines=tuple(lane_lines),
        crossing=crossing,
        street_end=street_end,
        sun=sun,
        sky=(_jitter(rng, sky[0], 10), _jitter(rng, sky[1], 8)),  # type: ignore[index]
        clouds=float(rng.uniform(0.0, 1.0)),
        cloud_seed=int(rng.integers(2**31)),
        road_colour=_jitter(rng, (asphalt, asphalt, asphalt + 4), 6),
        pavement_colour=_jitter(rng, _pick(rng, _PAVEMENTS), 14),  # type: ignore[arg-type]
        kerb_colour=_jitter(rng, (186, 184, 178), 10),
        marking_colour=_jitter(rng, (226, 224, 214) if rng.random() < 0.8 else (220, 190, 70), 8),
        exposure=float(rng.uniform(0.85, 1.15)),
        tint=tuple(float(t) for t in rng.uniform(0.92, 1.08, 3)),  # type: ignore[arg-type]
        noise=float(rng.uniform(2.0, 6.0)),
        blur=float(rng.uniform(0.4, 0.9)),
        background=tuple(background),
        garden_trees=tuple(garden_trees),
        fences=tuple(fences),
        objects=tuple(objects),
    )


def _far_wall(rng: np.random.Generator, z: float) -> list[_Block]:
    blocks, x = [], -260.0
    while x < 260:
        w = float(rng.uniform(8, 30))
        colour = _jitter(rng, _pick(rng, _FACADES), 14)  # type: ignore[arg-type]
        glass = _jitter(rng, _pick(rng, _GLASS), 8)  # type: ignore[arg-type]
        height, bay = float(rng.uniform(6, 26)), float(rng.uniform(2.5, 4.0))
        blocks.append(_Block(x, x + w, z, height, colour, glass, bay))
        x += w
    return blocks


def _building_row(rng: np.random.Generator, x: float, z: float, end: float, lit: float) -> list[_Building]:
    row = []
    while z < end:
        if rng.random() < 0.1:  # an alley
            z += float(rng.uniform(3, 8))
            continue
        length = float(min(rng.uniform(8, 30), end - z)) if end - z > 4 else end - z
        ground = float(rng.uniform(3.4, 4.6))
        floor = float(rng.uniform(2.9, 3.5))
        floors = int(rng.integers(1, 7))
        bay = float(rng.uniform(2.4, 4.2))
        colour = _shade(_jitter(rng, _pick(rng, _FACADES), 14), lit)  # type: ignore[arg-type]
        row.append(_Building(
            x=x, z0=z, z1=z + length, height=ground + floors * floor + float(rng.uniform(0.3, 1.5)),
            colour=colour, glass=_jitter(rng, _pick(rng, _GLASS), 10),  # type: ignore[arg-type]
            trim=_shade(colour, float(rng.choice([0.75, 1.15]))), ground_floor=ground, floor=floor, bay=bay,
            window_w=bay * float(rng.uniform(0.4, 0.65)), window_h=float(rng.uniform(1.2, 1.9)),
            shop=bool(rng.random() < 0.5),
        ))  # fmt: skip
        z += length
    return row


def _fence_run(
    rng: np.random.Generator, x: float, end: float, min_cover: float, low: bool = False
) -> list[_Fence]:
    fences, z = [], float(rng.uniform(-5, 5))
    colour = _jitter(rng, _pick(rng, _FENCES), 12)  # type: ignore[arg-type]
    height = float(rng.uniform(0.8, 1.1) if low else rng.uniform(1.0, 1.8))
    slat = float(rng.uniform(0.12, 0.3) if not low else rng.uniform(1.5, 2.5))
    while z < end:
        length = float(rng.uniform(10, 60))
        fences.append(_Fence(x, z, min(z + length, end), height, colour, slat))
        z += length + (float(rng.uniform(2, 12)) if rng.random() > min_cover else 0.0) + 0.01
    return fences


def _tree_row(
    rng: np.random.Generator, side: int, x: float, end: float, gap: tuple[float, float]
) -> list[_Tree]:
    trees, z = [], float(rng.uniform(0, gap[1]))
    base = _pick(rng, _LEAVES)
    while z < min(end, 260):
        r = float(rng.uniform(1.2, 2.6))
        leaves = _jitter(rng, base, 12)  # type: ignore[arg-type]
        blobs = [(0.0, r * 0.9, r, r * 0.95, _shade(leaves, 0.8))]
        for _ in range(int(rng.integers(2, 5))):
            blobs.append((float(rng.uniform(-0.6, 0.6) * r), float(r * rng.uniform(0.7, 1.5)),
                          float(r * rng.uniform(0.45, 0.75)), float(r * rng.uniform(0.4, 0.7)),
                          _shade(leaves, float(rng.uniform(0.9, 1.2)))))  # fmt: skip
        trunk = _jitter(rng, (82, 64, 44), 10)
        trees.append(_Tree(x + side * float(rng.uniform(-0.2, 0.2)), z, float(rng.uniform(1.8, 3.5)),
                           float(rng.uniform(0.2, 0.4)), trunk, tuple(blobs)))  # fmt: skip
        z += float(rng.uniform(*gap))
    return trees


def _lamp_row(rng: np.random.Generator, side: int, x: float, end: float, lamps: bool) -> list[_Pole]:
    poles, z = [], float(rng.uniform(0, 20))
    colour = _jitter(rng, _pick(rng, _POLES), 10)  # type: ignore[arg-type]
    spacing = float(rng.uniform(14, 30))
    while z < min(end, 260):
        if lamps:
            poles.append(_Pole(x, z, float(rng.uniform(6.5, 9)), float(rng.uniform(0.16, 0.26)), colour,
                               -side * float(rng.uniform(0.8, 2.0))))  # fmt: skip
        elif rng.random() < 0.6:  # bare utility / bollard-style poles
            poles.append(_Pole(x, z, float(rng.uniform(3, 9)), float(rng.uniform(0.15, 0.3)), colour, 0.0))
        z += spacing * float(rng.uniform(0.8, 1.2))
    return poles


def _sign_at(rng: np.random.Generator, x: float, z: float, shape: str) -> _Sign:
    faces = {
        "rect": ((30, 70, 160), (235, 235, 235)), "circle": ((200, 30, 30), (240, 240, 236)),
        "triangle": ((205, 35, 30), (238, 236, 228)), "diamond": ((238, 238, 232), (230, 190, 30)),
        "lights": ((34, 34, 36), (0, 0, 0)),
    }  # fmt: skip
    face, inner = faces[shape]
    pole = _jitter(rng, _pick(rng, _POLES), 10)  # type: ignore[arg-type]
    return _Sign(x, z, float(rng.uniform(2.2, 3.0)), float(rng.uniform(0.55, 0.9)), shape,
                 _jitter(rng, face, 10), _jitter(rng, inner, 8), pole)  # fmt: skip


def _sign_row(rng: np.random.Generator, x: float, end: float) -> list[_Sign]:
    signs, z = [], float(rng.uniform(4, 25))
    while z < min(end, 200):
        shape = str(rng.choice(_SIGN_SHAPES, p=[0.3, 0.3, 0.15, 0.1, 0.15]))
        signs.append(_sign_at(rng, x, z, shape))
        z += float(rng.uniform(12, 40))
    return signs


def _person(rng: np.random.Generator) -> dict:
    return dict(
        height=float(rng.uniform(1.55, 1.92) if rng.random() > 0.1 else rng.uniform(1.1, 1.4)),
        stride=float(rng.uniform(0, 1)), phase=float(rng.uniform(0, 2 * math.pi)),
        top=_jitter(rng, _pick(rng, _CLOTHES), 14),  # type: ignore[arg-type]
        legs=_jitter(rng, _pick(rng, _CLOTHES), 14),  # type: ignore[arg-type]
        skin=_jitter(rng, _pick(rng, _SKIN), 8),  # type: ignore[arg-type]
    )  # fmt: skip


def _pedestrians(
    rng: np.random.Generator, side: int, kerb: float, walk: float, travel: float, busy: float
) -> list[_Pedestrian]:
    people, z = [], float(rng.uniform(6, 14))
    while z < travel + 90:
        x = kerb + side * float(rng.uniform(0.6, max(0.7, walk - 0.4)))
        v = float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.15))
        person = _person(rng)
        hair = _jitter(rng, _pick(rng, _HAIR), 8)  # type: ignore[arg-type]
        people.append(_Pedestrian(x, z, v, hair=hair, **person))
        z += float(rng.uniform(4, 16)) / busy
    return people


def _car(rng: np.random.Generator, x: float, z: float, v: float, facing: int) -> _Car:
    paint = _jitter(rng, _pick(rng, _PAINT), 10)  # type: ignore[arg-type]
    glass = _jitter(rng, _pick(rng, _GLASS), 8)  # type: ignore[arg-type]
    if rng.random() < 0.15:  # van
        size = rng.uniform((1.9, 4.8, 2.0), (2.2, 6.5, 2.6))  # width, length, height
        return _Car(x, z, v, *(float(a) for a in size), 0.0, paint, glass, facing)  # type: ignore[arg-type]
    size = rng.uniform((1.65, 3.8, 0.8, 0.45), (1.9, 4.8, 1.0, 0.6))  # width, length, body, cabin
    return _Car(x, z, v, *(float(a) for a in size), paint, glass, facing)  # type: ignore[arg-type]


def _parked_cars(rng: np.random.Generator, side: int, kerb: float, end: float) -> list[_Car]:
    cars, z = [], float(rng.uniform(-3, 6))
    while z < min(end, 220):
        car = _car(rng, 0.0, z, 0.0, int(rng.choice([-1, 1])))
        if rng.random() > 0.2:  # else an empty parking space
            cars.append(dataclasses.replace(car, x=kerb - side * (0.35 + car.width / 2)))
        z += car.length + float(rng.uniform(0.8, 6))
    return cars


def _traffic(rng: np.random.Generator, centre: float, v: float, facing: int, travel: float, end: float,
             busy: float) -> list[_Car]:  # fmt: skip
    cars = []
    lo, hi = (8.0, end) if v > 0 else (travel * 0.3, end + abs(v) * MAX_FRAMES_PER_SEQUENCE)
    z = lo + float(rng.uniform(0, 14))
    while z < min(hi, 400):
        x, dv = centre + float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.03, 0.03))
        car = _car(rng, x, z, v + dv, facing)
        cars.append(car)
        z += car.length + float(rng.uniform(6, 40)) / busy
    return cars


def _cyclists(rng: np.random.Generator, lane: float, kerb_l: float, kerb_r: float, park: tuple[bool, bool],
              speed: float, travel: float) -> list[_Cyclist]:  # fmt: skip
    def rider(x: float, z: float, vx: float, vz: float, heading: float) -> _Cyclist:
        person = _person(rng)
        bike = _jitter(rng, _pick(rng, _PAINT), 10)  # type: ignore[arg-type]
        helmet = _jitter(rng, _pick(rng, _CLOTHES), 10)  # type: ignore[arg-type]
        return _Cyclist(x, z, vx, vz, heading, bike, person["top"], person["legs"], person["skin"], helmet,
                        float(rng.uniform(0, 2 * math.pi)))  # fmt: skip

    # one rider stays ahead of the camera for the whole sequence, so most frames show a cyclist
    x = lane / 2 + 0.05 if park[1] else kerb_r - 0.6
    riders = [rider(x, float(rng.uniform(9, 26)), 0.0, speed * float(rng.uniform(0.8, 1.0)), 0.0)]
    if rng.random() < 0.4:
        x = kerb_l + (2.45 if park[0] else 0.6)
        z = float(rng.uniform(20, 60) + travel)
        riders.append(rider(x, z, 0.0, -float(rng.uniform(0.3, 0.6)), math.pi))
    if rng.random() < 0.3:  # crossing the street far ahead, seen from the side
        d = float(rng.choice([-1, 1]))
        z = float(rng.uniform(25, 50) + travel * 0.5)
        riders.append(rider(-d * 4.0, z, d * 0.35, 0.0, d * math.pi / 2))
    return riders


# ---------------------------------------------------------------------------------------------
# rendering


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    style: Optional[SceneStyle] = None,
    frame: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame: image (H, W, 3) uint8 and mask (H, W) uint8 with CamVid ids 0..10.

    Without ``style`` a new street is drawn from ``rng``. With one, ``frame`` moves the camera
    forward and the traffic along, and ``rng`` only adds camera shake and sensor noise.
    """
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ConfigError(
            f"synthetic scene size {height}x{width} is too small; use at least {MIN_SIZE}x{MIN_SIZE}"
        )
    if style is None:
        style = sample_style(rng)
    cam = _Camera(
        focal=style.focal * width,
        cx=(style.vanish_x + rng.normal(0, 0.012)) * width,
        cy=(style.horizon + rng.normal(0, 0.01)) * height,
        height=style.camera_height + float(rng.normal(0, 0.03)),
        x=float(rng.normal(0, 0.12)),
        z=style.camera_speed * frame,
    )
    canvas = _Canvas(_sky(style, height, width, cam.cy))
    _draw_ground(canvas, cam, style)
    for item in style.background:
        item.draw(canvas, cam)
    _draw_shadows(canvas, cam, style, frame)
    visible = [o for o in style.garden_trees if _MIN_OBJECT_DEPTH < o.z - cam.z < _MAX_OBJECT_DEPTH]
    for tree in sorted(visible, key=lambda o: -_distance(o, cam, frame)):
        tree.draw(canvas, cam, frame)
    for fence in style.fences:
        fence.draw(canvas, cam)
    for obj in sorted(_visible(style.objects, cam, frame), key=lambda o: -_distance(o, cam, frame)):
        obj.draw(canvas, cam, frame)
    image = _finish(np.asarray(canvas.image), np.asarray(canvas.mask), style, rng)
    mask = np.asarray(canvas.mask, dtype=np.uint8)
    if style.mirror:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _visible(objects: Sequence[_Object], cam: _Camera, frame: int) -> list[_Object]:
    out = []
    for o in objects:
        x, z = o.position(frame)
        d = z - cam.z
        if _MIN_OBJECT_DEPTH < d < _MAX_OBJECT_DEPTH and abs(x - cam.x) < d * 2.0 + 4:
            out.append(o)
    return out


def _distance(obj: _Object, cam: _Camera, frame: int) -> float:
    x, z = obj.position(frame)
    return math.hypot(x - cam.x, z - cam.z)


def _sky(style: SceneStyle, height: int, width: int, horizon: float) -> np.ndarray:
    t = np.clip(np.arange(height, dtype=np.float32) / max(horizon, 1.0), 0, 1)[:, None] ** 0.8
    top, bottom = np.asarray(style.sky[0], np.float32), np.asarray(style.sky[1], np.float32)
    rows = top * (1 - t) + bottom * t  # (H, 3)
    return np.repeat(rows[:, None, :], width, axis=1).astype(np.uint8)


def _draw_ground(canvas: _Canvas, cam: _Camera, style: SceneStyle) -> None:
    w, h = canvas.width, canvas.height
    canvas.polygon([(0, cam.cy), (w, cam.cy), (w, h + 1), (0, h + 1)], PAVEMENT, style.pavement_colour)
    near, end = cam.z + _NEAR, style.street_end
    kerb_l, kerb_r = style.road
    canvas.polygon(cam.quad_y(0, kerb_l, kerb_r, near, end), ROAD, style.road_colour)
    view = min(end, cam.z + 120)
    for kerb, facade in ((kerb_l, style.facades[0]), (kerb_r, style.facades[1])):
        side = 1 if kerb > 0 else -1
        canvas.paint(cam.quad_y(0, kerb, kerb + side * 0.3, near, end), style.kerb_colour)
        joint = _shade(style.pavement_colour, 0.82)
        z = math.floor(cam.z / 1.8) * 1.8
        while z < min(view, cam.z + 45):
            if z > near:
                canvas.paint_line([cam.project(kerb + side * 0.3, 0, z), cam.project(facade, 0, z)], 1, joint)
            z += 1.8
    for x in style.lane_lines:
        z = math.floor(cam.z / 9.0) * 9.0
        while z < view:
            if z + 3.0 > near:
                dash = cam.quad_y(0, x - 0.07, x + 0.07, max(z, near), min(z + 3.0, end))
                canvas.paint(dash, style.marking_colour)
            z += 9.0
    for x in (kerb_l + 0.35, kerb_r - 0.35):
        canvas.paint(cam.quad_y(0, x - 0.06, x + 0.06, near, end), style.marking_colour)
    if style.crossing is not None and style.crossing - cam.z > 2:
        x = kerb_l + 0.6
        while x < kerb_r - 0.6:
            stripe = cam.quad_y(0, x, x + 0.5, style.crossing, style.crossing + 3.0)
            canvas.paint(stripe, style.marking_colour)
            x += 1.0


def _draw_shadows(canvas: _Canvas, cam: _Camera, style: SceneStyle, frame: int) -> None:
    shade = Image.new("L", (canvas.width, canvas.height), 0)
    draw = ImageDraw.Draw(shade)
    if style.sun:
        # buildings on the side the sun comes from shade a band of pavement and road
        reach = abs(style.sun) * 4.0
        for b in style.background:
            if isinstance(b, _Building) and b.x * style.sun < 0 and b.z1 > cam.z + _NEAR:
                x1 = b.x + math.copysign(min(reach + b.height * 0.15, 12.0), style.sun)
                band = cam.quad_y(0, min(b.x, x1), max(b.x, x1), max(b.z0, cam.z + _NEAR), b.z1)
                draw.polygon(band, fill=95)
    for obj in _visible(style.objects, cam, frame):
        if style.sun or isinstance(obj, _Car):
            obj.shadow(draw, cam, frame, style.sun)
    canvas.darken_ground(shade)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Low-frequency noise (H, W), roughly unit variance: blotches, clouds, uneven light."""
    gh, gw = max(2, round(height / cell) + 2), max(2, round(width / cell) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _finish(image: np.ndarray, mask: np.ndarray, style: SceneStyle, rng: np.random.Generator) -> np.ndarray:
    """Textures, clouds, uneven light, camera noise and blur (the mask is untouched)."""
    h, w = mask.shape
    img = image.astype(np.float32)
    grain = _FINE[mask] * rng.standard_normal((h, w)).astype(np.float32)
    blotch = _BLOTCH[mask] * _smooth_noise(rng, h, w, max(3.0, h / 30))
    clouds = np.maximum(_smooth_noise(np.random.default_rng(style.cloud_seed), h, w, h / 5), 0)
    img += (grain + blotch + (mask == SKY) * style.clouds * 45 * clouds)[..., None]
    light = 1 + 0.07 * _smooth_noise(rng, h, w, h / 2)
    gain = style.exposure * float(rng.uniform(0.95, 1.05))
    img = img * light[..., None] * gain * np.asarray(style.tint, np.float32)
    img += rng.normal(0, style.noise, img.shape).astype(np.float32)
    if style.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), style.blur)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# the dataset on disk


def _params(seed: int, size: Sequence[int], counts: Mapping[str, int], frames_per_sequence: int) -> dict:
    return {
        "generator": "drivseg.synthetic",
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "counts": {k: int(v) for k, v in counts.items()},
        "frames_per_sequence": int(frames_per_sequence),
    }


def _check_params(
    seed: int, size: Sequence[int], counts: Mapping[str, int], frames_per_sequence: int
) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synthetic seed {seed!r}: expected an integer >= 0")
    if len(size) != 2 or min(size) < MIN_SIZE:
        raise ConfigError(f"synthetic size {tuple(size)}: expected (height, width), each >= {MIN_SIZE}")
    bad = {k: v for k, v in counts.items() if not (isinstance(v, int) and v >= 0 and str(k).isidentifier())}
    if bad or not any(counts.values()):
        raise ConfigError(f"synthetic counts {dict(counts)}: expected split names -> image counts >= 0, e.g. "
                          f"{dict(DEFAULT_COUNTS)}")  # fmt: skip
    if not 1 <= frames_per_sequence <= MAX_FRAMES_PER_SEQUENCE:
        raise ConfigError(
            f"synthetic frames_per_sequence={frames_per_sequence}: expected 1..{MAX_FRAMES_PER_SEQUENCE}"
        )


def default_synthetic_root(
    seed: int = DEFAULT_SEED,
    size: Sequence[int] = DEFAULT_SIZE,
    counts: Mapping[str, int] = DEFAULT_COUNTS,
    frames_per_sequence: int = DEFAULT_FRAMES_PER_SEQUENCE,
) -> Path:
    """Cache folder for a generated dataset: ``$DRIVSEG_CACHE`` (or ``~/.cache/drivseg``) /
    ``synthetic-v<version>-<hash of the parameters>``, so other parameters never collide."""
    cache = os.environ.get("DRIVSEG_CACHE") or str(Path.home() / ".cache" / "drivseg")
    key = json.dumps(_params(seed, size, counts, frames_per_sequence), sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return Path(cache).expanduser() / f"synthetic-v{GENERATOR_VERSION}-{digest}"


def write_synthetic_dataset(
    root: Path,
    seed: int = DEFAULT_SEED,
    size: Sequence[int] = DEFAULT_SIZE,
    counts: Mapping[str, int] = DEFAULT_COUNTS,
    frames_per_sequence: int = DEFAULT_FRAMES_PER_SEQUENCE,
) -> Path:
    """Write the SegNet layout (``train/ trainannot/ ...``) of rendered scenes under ``root``.

    Deterministic in ``seed``; splits use disjoint sequences. Files are written into a hidden
    sibling folder that replaces ``root`` only when complete, with ``dataset.json`` recording the
    parameters. A complete dataset with the same parameters is left as it is.
    """
    root = Path(root).expanduser()
    _check_params(seed, size, counts, frames_per_sequence)
    params = _params(seed, size, counts, frames_per_sequence)
    if _is_complete(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        _write_all(tmp, seed, (int(size[0]), int(size[1])), counts, frames_per_sequence)
        (tmp / MANIFEST).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            os.replace(tmp, root)  # atomic; only succeeds onto a missing or empty folder
        except OSError:
            if _is_complete(root, params):  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def prepare_synthetic(root: Path) -> None:
    """``DatasetSource.prepare``: generate the default dataset at ``root`` unless it is there."""
    write_synthetic_dataset(root)


def _is_complete(root: Path, params: dict) -> bool:
    """True for a finished dataset with these parameters; False for a missing or empty folder."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise DataError(f"synthetic data root {root} is a file; expected a folder. Pass another --data-root")
    manifest = root / MANIFEST
    if not manifest.is_file():
        if any(root.iterdir()):
            raise DataError(
                f"{root} is not empty and has no {MANIFEST}, so it is not a generated synthetic dataset; "
                "pass an empty or missing folder as --data-root"
            )
        return False
    try:
        found = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{manifest} cannot be read ({err}); delete {root} to regenerate it") from err
    if found != params:
        raise DataError(
            f"{root} holds a synthetic dataset made with {found}, but {params} was asked for; "
            "delete the folder or pass another --data-root"
        )
    for split, count in params["counts"].items():
        for folder in (root / split, root / f"{split}annot"):
            n = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
            if n != count:
                raise DataError(f"{folder} holds {n} PNGs, expected {count}; delete {root} to regenerate it")
    return True


def _write_all(out: Path, seed: int, size: tuple[int, int], counts: Mapping[str, int], fps: int) -> None:
    sequence = 0
    for split, count in counts.items():
        (out / split).mkdir()
        (out / f"{split}annot").mkdir()
        for first in range(0, count, fps):
            frames = min(fps, count - first)
            # fixed-length spawn keys: one stream per sequence (slot 0) and per frame (slots 1..)
            style = sample_style(_stream(seed, sequence, 0), fps)
            for frame in range(frames):
                rng = _stream(seed, sequence, frame + 1)
                image, mask = render_scene(rng, size[0], size[1], style, frame)
                name = f"synth{sequence:02d}_{frame:06d}.png"
                _save_png(image, out / split / name)
                _save_png(mask, out / f"{split}annot" / name)
            sequence += 1


def _stream(seed: int, sequence: int, slot: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(sequence, slot)))


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=6)  # uint8 (H, W, 3) -> RGB, (H, W) -> L


SYNTHETIC = DatasetSource(
    name="synthetic",
    label_spec=CAMVID_SPEC,
    find_pairs=find_segnet_pairs,
    default_root=default_synthetic_root,
    prepare=prepare_synthetic,
    download_hint="generated locally on first use",
)

"""Objects that stay put while the camera drives: buildings, fences, trees, poles and signs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

from drivseg.data.synthetic.camera import (
    MAX_OBJECT_DEPTH,
    NEAR,
    OPEN_STREET_END,
    Camera,
    Canvas,
    Point,
    projected_circle,
)
from drivseg.data.synthetic.labels import BUILDING, FENCE, POLE, SIGN, TREE
from drivseg.data.synthetic.palette import RGB, shade_colour


def _box(cx: float, cy: float, rx: float, ry: float) -> list[Point]:
    return [(cx - rx, cy - ry), (cx + rx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]


@dataclass(frozen=True)
class Building:
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

    def draw(self, canvas: Canvas, cam: Camera) -> None:
        za = max(self.z0, cam.z + NEAR)
        if self.z1 <= za or self.z0 - cam.z > OPEN_STREET_END:
            return
        canvas.polygon(cam.quad_x(self.x, 0, self.height, za, self.z1), BUILDING, self.colour)
        canvas.paint(cam.quad_x(self.x, self.height - 0.6, self.height, za, self.z1), self.trim)
        if self.z0 - cam.z > 250:
            return
        bays = np.arange(self.z0 + self.bay / 2, self.z1 - self.bay / 3, self.bay)
        if self.shop:
            frames = shade_colour(self.glass, 0.6)
            for zc in bays:
                z0, z1 = zc - 0.42 * self.bay, zc + 0.42 * self.bay
                if z0 > za:
                    top = self.ground_floor - 0.7
                    canvas.paint(cam.quad_x(self.x, 0.4, top, z0, z1), frames)
                    canvas.paint(cam.quad_x(self.x, 0.5, top - 0.1, z0 + 0.1, z1 - 0.1), self.glass)
        else:
            for zc in bays[1::3]:
                if zc - 0.6 > za:
                    door = cam.quad_x(self.x, 0, 2.2, zc - 0.6, zc + 0.6)
                    canvas.paint(door, shade_colour(self.colour, 0.45))
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
class Block:
    """A building facing the camera at depth z: the wall closing the street."""

    x0: float
    x1: float
    z: float
    height: float
    colour: RGB
    glass: RGB
    bay: float

    def draw(self, canvas: Canvas, cam: Camera) -> None:
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
class Fence:
    """An opaque fence panel in the plane X = x; slats are painted on it."""

    x: float
    z0: float
    z1: float
    height: float
    colour: RGB
    slat: float

    def draw(self, canvas: Canvas, cam: Camera) -> None:
        za = max(self.z0, cam.z + NEAR)
        if self.z1 <= za or self.z0 - cam.z > MAX_OBJECT_DEPTH:
            return
        canvas.polygon(cam.quad_x(self.x, 0, self.height, za, self.z1), FENCE, self.colour)
        dark = shade_colour(self.colour, 0.62)
        canvas.paint(cam.quad_x(self.x, self.height * 0.78, self.height * 0.88, za, self.z1), dark)
        z = self.z0 + self.slat
        while z < self.z1:
            if z > za + 0.05 and z - cam.z < 40:
                top, bottom = cam.project(self.x, self.height, z), cam.project(self.x, 0, z)
                canvas.paint_line([top, bottom], 1, dark)
            z += self.slat


@dataclass(frozen=True)
class Tree:
    """Trunk plus a canopy of overlapping blobs (offsets and radii in metres)."""

    x: float
    z: float
    trunk_h: float
    trunk_w: float
    trunk: RGB
    blobs: tuple[tuple[float, float, float, float, RGB], ...]  # dx, dy, rx, ry, colour

    def position(self, frame: int) -> tuple[float, float]:
        return self.x, self.z

    def draw(self, canvas: Canvas, cam: Camera, frame: int) -> None:
        s = cam.scale(self.z)
        bx, by = cam.project(self.x, 0, self.z)
        canvas.bar(bx, by - (self.trunk_h + 0.5) * s, by, self.trunk_w * s, TREE, self.trunk)
        for dx, dy, rx, ry, colour in self.blobs:
            canvas.ellipse(bx + dx * s, by - (self.trunk_h + dy) * s, rx * s, ry * s, TREE, colour)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: Camera, frame: int, sun: float) -> None:
        r = max(b[2] for b in self.blobs)
        centre = (self.x + sun * (self.trunk_h + r), 0, self.z)
        pts = projected_circle(cam, centre, (1, 0, 0), (0, 0, 1), r, 10)
        draw.polygon(pts, fill=80)


@dataclass(frozen=True)
class Pole:
    """A lamp post or utility pole; ``arm`` reaches over the road (signed metres along X)."""

    x: float
    z: float
    height: float
    width: float
    colour: RGB
    arm: float

    def position(self, frame: int) -> tuple[float, float]:
        return self.x, self.z

    def draw(self, canvas: Canvas, cam: Camera, frame: int) -> None:
        s = cam.scale(self.z)
        bx, by = cam.project(self.x, 0, self.z)
        canvas.bar(bx, by - self.height * s, by, self.width * s, POLE, self.colour)
        if self.arm:
            start = cam.project(self.x, self.height - 0.5, self.z)
            end = cam.project(self.x + self.arm, self.height, self.z)
            canvas.line([start, end], 0.12 * s, POLE, self.colour)
            canvas.ellipse(end[0], end[1] + 0.1 * s, 0.3 * s, 0.12 * s, POLE, shade_colour(self.colour, 0.7))

    def shadow(self, draw: ImageDraw.ImageDraw, cam: Camera, frame: int, sun: float) -> None:
        pass


@dataclass(frozen=True)
class Sign:
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

    def draw(self, canvas: Canvas, cam: Camera, frame: int) -> None:
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
                c = colour if k == lit else shade_colour(colour, 0.3)
                canvas.paint_ellipse(cx, cy + (k - 1) * hh * 0.62, r * 0.55, r * 0.55, c)
        else:
            canvas.polygon(_box(cx, cy, r, r), SIGN, self.face)
            arrow = [(cx - 0.45 * r, cy + 0.1 * r), (cx + 0.1 * r, cy - 0.6 * r),
                     (cx + 0.55 * r, cy + 0.1 * r)]  # fmt: skip
            canvas.paint(arrow, self.inner)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: Camera, frame: int, sun: float) -> None:
        pass

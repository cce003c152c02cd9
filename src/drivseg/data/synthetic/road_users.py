"""Objects that move between frames: cars and vans, pedestrians and cyclists."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import ImageDraw

from drivseg.data.synthetic.camera import MIN_OBJECT_DEPTH, Camera, Canvas, Point, Vec3, projected_circle
from drivseg.data.synthetic.labels import BICYCLIST, CAR, PEDESTRIAN
from drivseg.data.synthetic.palette import RGB, shade_colour


@dataclass(frozen=True)
class Car:
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

    def draw(self, canvas: Canvas, cam: Camera, frame: int) -> None:
        x, z = self.position(frame)
        xl, xr, z1 = x - self.width / 2, x + self.width / 2, z + self.length
        side = xl if cam.x < xl else xr if cam.x > xr else None
        s = cam.scale(z)
        dark, tyre = shade_colour(self.paint, 0.72), (24, 24, 26)
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
                canvas.polygon(projected_circle(cam, (side, 0.33, wz), *axis, 0.33, 12), CAR, tyre)
                canvas.paint(projected_circle(cam, (side, 0.33, wz), *axis, 0.15, 8), (120, 120, 124))
        if self.body_h < cam.height:  # the camera sees the bonnet / boot lid
            lid_end = z1 if self.cabin_h == 0 else z + 0.3 * self.length
            canvas.polygon(cam.quad_y(self.body_h, xl, xr, z, lid_end), CAR, shade_colour(self.paint, 1.08))
        if self.cabin_h > 0:
            c0 = z + 0.25 * self.length
            if top_y < cam.height:
                canvas.polygon(cam.quad_y(top_y, xl + 0.15, xr - 0.15, c0 + 0.3, z + 0.8 * self.length - 0.2),
                               CAR, shade_colour(self.paint, 1.1))  # fmt: skip
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
            canvas.paint(panel, shade_colour(self.paint, 0.85))
            canvas.paint_line([cam.project(x, 0.4, z), cam.project(x, self.body_h - 0.15, z)], 0.03 * s, dark)
        plate = (220, 214, 170) if self.facing > 0 else (230, 230, 230)
        canvas.paint(cam.quad_z(z, x - 0.26, x + 0.26, 0.38, 0.5), plate)

    def shadow(self, draw: ImageDraw.ImageDraw, cam: Camera, frame: int, sun: float) -> None:
        x, z = self.position(frame)
        if z - cam.z > MIN_OBJECT_DEPTH:
            hw = self.width / 2 + 0.15
            draw.polygon(cam.quad_y(0, x - hw + sun, x + hw + sun, z - 0.15, z + self.length), fill=140)


@dataclass(frozen=True)
class Pedestrian:
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

    def draw(self, canvas: Canvas, cam: Camera, frame: int) -> None:
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

    def shadow(self, draw: ImageDraw.ImageDraw, cam: Camera, frame: int, sun: float) -> None:
        x, z = self.position(frame)
        draw.polygon(cam.quad_y(0, x - 0.25, x + 0.25 + sun * 1.2, z - 0.2, z + 0.25), fill=90)


@dataclass(frozen=True)
class Cyclist:
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

    def draw(self, canvas: Canvas, cam: Camera, frame: int) -> None:
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
            ring = projected_circle(cam, at(f, 0.34), fwd, up, 0.34, 16)
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

    def shadow(self, draw: ImageDraw.ImageDraw, cam: Camera, frame: int, sun: float) -> None:
        x, z = self.position(frame)
        draw.polygon(cam.quad_y(0, x - 0.25, x + 0.25 + sun, z - 0.5, z + 0.5), fill=80)

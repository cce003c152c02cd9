"""``render_scene``: one frame of a street, drawn back to front into image and mask."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from drivseg.data.synthetic.camera import MAX_OBJECT_DEPTH, MIN_OBJECT_DEPTH, NEAR, Camera, Canvas
from drivseg.data.synthetic.finish import finish
from drivseg.data.synthetic.labels import PAVEMENT, ROAD
from drivseg.data.synthetic.palette import shade_colour
from drivseg.data.synthetic.road_users import Car
from drivseg.data.synthetic.static_objects import Building
from drivseg.data.synthetic.style import SceneStyle, StreetObject, sample_style
from drivseg.errors import ConfigError

MIN_SIZE = 32  # px, per side


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
    cam = Camera(
        focal=style.focal * width,
        cx=(style.vanish_x + rng.normal(0, 0.012)) * width,
        cy=(style.horizon + rng.normal(0, 0.01)) * height,
        height=style.camera_height + float(rng.normal(0, 0.03)),
        x=float(rng.normal(0, 0.12)),
        z=style.camera_speed * frame,
    )
    canvas = Canvas(_sky(style, height, width, cam.cy))
    _draw_ground(canvas, cam, style)
    for item in style.background:
        item.draw(canvas, cam)
    _draw_shadows(canvas, cam, style, frame)
    visible = [o for o in style.garden_trees if MIN_OBJECT_DEPTH < o.z - cam.z < MAX_OBJECT_DEPTH]
    for tree in sorted(visible, key=lambda o: -_distance(o, cam, frame)):
        tree.draw(canvas, cam, frame)
    for fence in style.fences:
        fence.draw(canvas, cam)
    for obj in sorted(_visible(style.objects, cam, frame), key=lambda o: -_distance(o, cam, frame)):
        obj.draw(canvas, cam, frame)
    image = finish(np.asarray(canvas.image), np.asarray(canvas.mask), style, rng)
    mask = np.asarray(canvas.mask, dtype=np.uint8)
    if style.mirror:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _visible(objects: Sequence[StreetObject], cam: Camera, frame: int) -> list[StreetObject]:
    out = []
    for o in objects:
        x, z = o.position(frame)
        d = z - cam.z
        if MIN_OBJECT_DEPTH < d < MAX_OBJECT_DEPTH and abs(x - cam.x) < d * 2.0 + 4:
            out.append(o)
    return out


def _distance(obj: StreetObject, cam: Camera, frame: int) -> float:
    x, z = obj.position(frame)
    return math.hypot(x - cam.x, z - cam.z)


def _sky(style: SceneStyle, height: int, width: int, horizon: float) -> np.ndarray:
    t = np.clip(np.arange(height, dtype=np.float32) / max(horizon, 1.0), 0, 1)[:, None] ** 0.8
    top, bottom = np.asarray(style.sky[0], np.float32), np.asarray(style.sky[1], np.float32)
    rows = top * (1 - t) + bottom * t  # (H, 3)
    return np.repeat(rows[:, None, :], width, axis=1).astype(np.uint8)


def _draw_ground(canvas: Canvas, cam: Camera, style: SceneStyle) -> None:
    w, h = canvas.width, canvas.height
    canvas.polygon([(0, cam.cy), (w, cam.cy), (w, h + 1), (0, h + 1)], PAVEMENT, style.pavement_colour)
    near, end = cam.z + NEAR, style.street_end
    kerb_l, kerb_r = style.road
    canvas.polygon(cam.quad_y(0, kerb_l, kerb_r, near, end), ROAD, style.road_colour)
    view = min(end, cam.z + 120)
    for kerb, facade in ((kerb_l, style.facades[0]), (kerb_r, style.facades[1])):
        side = 1 if kerb > 0 else -1
        canvas.paint(cam.quad_y(0, kerb, kerb + side * 0.3, near, end), style.kerb_colour)
        joint = shade_colour(style.pavement_colour, 0.82)
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


def _draw_shadows(canvas: Canvas, cam: Camera, style: SceneStyle, frame: int) -> None:
    shade = Image.new("L", (canvas.width, canvas.height), 0)
    draw = ImageDraw.Draw(shade)
    if style.sun:
        # buildings on the side the sun comes from shade a band of pavement and road
        reach = abs(style.sun) * 4.0
        for b in style.background:
            if isinstance(b, Building) and b.x * style.sun < 0 and b.z1 > cam.z + NEAR:
                x1 = b.x + math.copysign(min(reach + b.height * 0.15, 12.0), style.sun)
                band = cam.quad_y(0, min(b.x, x1), max(b.x, x1), max(b.z0, cam.z + NEAR), b.z1)
                draw.polygon(band, fill=95)
    for obj in _visible(style.objects, cam, frame):
        if style.sun or isinstance(obj, Car):
            obj.shadow(draw, cam, frame, style.sun)
    canvas.darken_ground(shade)

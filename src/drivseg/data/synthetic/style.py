"""``SceneStyle``: everything the frames of one sequence share, and ``sample_style`` to draw one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from drivseg.data.synthetic.camera import OPEN_STREET_END
from drivseg.data.synthetic.layout import (
    MAX_FRAMES_PER_SEQUENCE,
    building_row,
    cyclists,
    far_wall,
    fence_run,
    lamp_row,
    parked_cars,
    pedestrians,
    sign_at,
    sign_row,
    traffic,
    tree_row,
)
from drivseg.data.synthetic.palette import PAVEMENTS, RGB, SKIES, jitter, pick
from drivseg.data.synthetic.road_users import Car, Cyclist, Pedestrian
from drivseg.data.synthetic.static_objects import Block, Building, Fence, Pole, Sign, Tree

# what is depth-sorted and drawn per frame; all share position(frame), draw(...) and shadow(...)
StreetObject = Union[Tree, Pole, Sign, Car, Pedestrian, Cyclist]


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
    background: tuple[Union[Block, Building], ...]  # drawn first, in this order
    garden_trees: tuple[Tree, ...]  # behind fences, in front of facades
    fences: tuple[Fence, ...]
    objects: tuple[StreetObject, ...]  # depth-sorted per frame


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
    street_end = float(travel + rng.uniform(70, 150)) if closed else OPEN_STREET_END
    sunny = rng.random() < 0.5
    sun = float(rng.choice([-1, 1]) * rng.uniform(0.6, 2.0)) if sunny else 0.0
    busy = float(rng.uniform(0.7, 1.4))

    background: list = []
    if closed:
        background += far_wall(rng, street_end)
    for side, x in ((-1, facade_l), (1, facade_r)):
        lit = 1.0 if sun == 0 else (1.12 if sun * side < 0 else 0.8)
        background += building_row(rng, x, -10.0, street_end, lit)

    objects: list = []
    garden_trees: list = []
    fences: list = []
    view_end = min(street_end, travel + 200.0)
    for side, kerb, walk, garden in ((-1, kerb_l, walks[0], gardens[0]), (1, kerb_r, walks[1], gardens[1])):
        outer = kerb + side * walk
        if garden:
            fences += fence_run(rng, outer + side * 0.05, view_end, min_cover=0.75)
            garden_trees += tree_row(rng, side, outer + side * setback[side > 0] * 0.5, view_end, (5, 12))
        elif rng.random() < 0.3:  # railings along the kerb
            fences += fence_run(rng, kerb + side * 0.35, view_end, min_cover=0.3, low=True)
        if rng.random() < 0.45 or not (garden or garden_trees):
            objects += tree_row(rng, side, kerb + side * float(rng.uniform(0.8, 1.3)), view_end, (7, 18))
        objects += lamp_row(rng, side, kerb + side * 0.5, view_end, lamps=rng.random() < 0.8)
        objects += sign_row(rng, kerb + side * float(rng.uniform(0.4, 0.8)), view_end)
        objects += pedestrians(rng, side, kerb, walk, travel, busy)
        if park[side > 0]:
            objects += parked_cars(rng, side, kerb, view_end)
    if not fences:
        side = int(rng.choice([-1, 1]))
        kerb = kerb_l if side < 0 else kerb_r
        fences += fence_run(rng, kerb + side * 0.35, view_end, min_cover=0.5, low=True)

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
            objects += traffic(rng, centre, v, facing, travel, view_end, busy)
    objects += cyclists(rng, lane, kerb_l, kerb_r, park, speed, travel)

    sky = pick(rng, SKIES)
    crossing = float(rng.uniform(15, 60) + travel * rng.random()) if rng.random() < 0.35 else None
    if crossing is not None and rng.random() < 0.6:
        objects.append(sign_at(rng, kerb_r + 0.5, crossing - 1.0, "lights"))
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
        sky=(jitter(rng, sky[0], 10), jitter(rng, sky[1], 8)),  # type: ignore[index]
        clouds=float(rng.uniform(0.0, 1.0)),
        cloud_seed=int(rng.integers(2**31)),
        road_colour=jitter(rng, (asphalt, asphalt, asphalt + 4), 6),
        pavement_colour=jitter(rng, pick(rng, PAVEMENTS), 14),  # type: ignore[arg-type]
        kerb_colour=jitter(rng, (186, 184, 178), 10),
        marking_colour=jitter(rng, (226, 224, 214) if rng.random() < 0.8 else (220, 190, 70), 8),
        exposure=float(rng.uniform(0.85, 1.15)),
        tint=tuple(float(t) for t in rng.uniform(0.92, 1.08, 3)),  # type: ignore[arg-type]
        noise=float(rng.uniform(2.0, 6.0)),
        blur=float(rng.uniform(0.4, 0.9)),
        background=tuple(background),
        garden_trees=tuple(garden_trees),
        fences=tuple(fences),
        objects=tuple(objects),
    )

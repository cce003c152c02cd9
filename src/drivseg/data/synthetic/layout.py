"""Where things stand: rows of buildings, fences, trees, poles, signs, people and vehicles.

Every helper draws from ``rng`` in a fixed order, so one seed always lays out the same street.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from drivseg.data.synthetic.palette import (
    CLOTHES,
    FACADES,
    FENCES,
    GLASS,
    HAIR,
    LEAVES,
    PAINT,
    POLES,
    SIGN_SHAPES,
    SKIN,
    jitter,
    pick,
    shade_colour,
)
from drivseg.data.synthetic.road_users import Car, Cyclist, Pedestrian
from drivseg.data.synthetic.static_objects import Block, Building, Fence, Pole, Sign, Tree

MAX_FRAMES_PER_SEQUENCE = 64  # oncoming traffic is placed to stay ahead for this many frames


def far_wall(rng: np.random.Generator, z: float) -> list[Block]:
    """Buildings facing the camera across the street at depth ``z``."""
    blocks, x = [], -260.0
    while x < 260:
        w = float(rng.uniform(8, 30))
        colour = jitter(rng, pick(rng, FACADES), 14)  # type: ignore[arg-type]
        glass = jitter(rng, pick(rng, GLASS), 8)  # type: ignore[arg-type]
        height, bay = float(rng.uniform(6, 26)), float(rng.uniform(2.5, 4.0))
        blocks.append(Block(x, x + w, z, height, colour, glass, bay))
        x += w
    return blocks


def building_row(rng: np.random.Generator, x: float, z: float, end: float, lit: float) -> list[Building]:
    """Facades in the plane X = ``x`` from ``z`` to ``end``, with alleys; ``lit`` scales their colour."""
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
        colour = shade_colour(jitter(rng, pick(rng, FACADES), 14), lit)  # type: ignore[arg-type]
        row.append(Building(
            x=x, z0=z, z1=z + length, height=ground + floors * floor + float(rng.uniform(0.3, 1.5)),
            colour=colour, glass=jitter(rng, pick(rng, GLASS), 10),  # type: ignore[arg-type]
            trim=shade_colour(colour, float(rng.choice([0.75, 1.15]))),
            ground_floor=ground, floor=floor, bay=bay,
            window_w=bay * float(rng.uniform(0.4, 0.65)), window_h=float(rng.uniform(1.2, 1.9)),
            shop=bool(rng.random() < 0.5),
        ))  # fmt: skip
        z += length
    return row


def fence_run(
    rng: np.random.Generator, x: float, end: float, min_cover: float, low: bool = False
) -> list[Fence]:
    """Fence panels along X = ``x`` covering about ``min_cover`` of the way; ``low`` for railings."""
    fences, z = [], float(rng.uniform(-5, 5))
    colour = jitter(rng, pick(rng, FENCES), 12)  # type: ignore[arg-type]
    height = float(rng.uniform(0.8, 1.1) if low else rng.uniform(1.0, 1.8))
    slat = float(rng.uniform(0.12, 0.3) if not low else rng.uniform(1.5, 2.5))
    while z < end:
        length = float(rng.uniform(10, 60))
        fences.append(Fence(x, z, min(z + length, end), height, colour, slat))
        z += length + (float(rng.uniform(2, 12)) if rng.random() > min_cover else 0.0) + 0.01
    return fences


def tree_row(
    rng: np.random.Generator, side: int, x: float, end: float, gap: tuple[float, float]
) -> list[Tree]:
    """Trees near X = ``x`` spaced ``gap`` metres apart (min, max)."""
    trees, z = [], float(rng.uniform(0, gap[1]))
    base = pick(rng, LEAVES)
    while z < min(end, 260):
        r = float(rng.uniform(1.2, 2.6))
        leaves = jitter(rng, base, 12)  # type: ignore[arg-type]
        blobs = [(0.0, r * 0.9, r, r * 0.95, shade_colour(leaves, 0.8))]
        for _ in range(int(rng.integers(2, 5))):
            blobs.append((float(rng.uniform(-0.6, 0.6) * r), float(r * rng.uniform(0.7, 1.5)),
                          float(r * rng.uniform(0.45, 0.75)), float(r * rng.uniform(0.4, 0.7)),
                          shade_colour(leaves, float(rng.uniform(0.9, 1.2)))))  # fmt: skip
        trunk = jitter(rng, (82, 64, 44), 10)
        trees.append(Tree(x + side * float(rng.uniform(-0.2, 0.2)), z, float(rng.uniform(1.8, 3.5)),
                          float(rng.uniform(0.2, 0.4)), trunk, tuple(blobs)))  # fmt: skip
        z += float(rng.uniform(*gap))
    return trees


def lamp_row(rng: np.random.Generator, side: int, x: float, end: float, lamps: bool) -> list[Pole]:
    """Lamp posts with arms over the road, or bare poles when not ``lamps``."""
    poles, z = [], float(rng.uniform(0, 20))
    colour = jitter(rng, pick(rng, POLES), 10)  # type: ignore[arg-type]
    spacing = float(rng.uniform(14, 30))
    while z < min(end, 260):
        if lamps:
            poles.append(Pole(x, z, float(rng.uniform(6.5, 9)), float(rng.uniform(0.16, 0.26)), colour,
                              -side * float(rng.uniform(0.8, 2.0))))  # fmt: skip
        elif rng.random() < 0.6:  # bare utility / bollard-style poles
            poles.append(Pole(x, z, float(rng.uniform(3, 9)), float(rng.uniform(0.15, 0.3)), colour, 0.0))
        z += spacing * float(rng.uniform(0.8, 1.2))
    return poles


def sign_at(rng: np.random.Generator, x: float, z: float, shape: str) -> Sign:
    """One sign of ``shape`` (see ``SIGN_SHAPES``) at (x, z)."""
    faces = {
        "rect": ((30, 70, 160), (235, 235, 235)), "circle": ((200, 30, 30), (240, 240, 236)),
        "triangle": ((205, 35, 30), (238, 236, 228)), "diamond": ((238, 238, 232), (230, 190, 30)),
        "lights": ((34, 34, 36), (0, 0, 0)),
    }  # fmt: skip
    face, inner = faces[shape]
    pole = jitter(rng, pick(rng, POLES), 10)  # type: ignore[arg-type]
    return Sign(x, z, float(rng.uniform(2.2, 3.0)), float(rng.uniform(0.55, 0.9)), shape,
                jitter(rng, face, 10), jitter(rng, inner, 8), pole)  # fmt: skip


def sign_row(rng: np.random.Generator, x: float, end: float) -> list[Sign]:
    """Signs of mixed shapes along X = ``x``."""
    signs, z = [], float(rng.uniform(4, 25))
    while z < min(end, 200):
        shape = str(rng.choice(SIGN_SHAPES, p=[0.3, 0.3, 0.15, 0.1, 0.15]))
        signs.append(sign_at(rng, x, z, shape))
        z += float(rng.uniform(12, 40))
    return signs


def _person(rng: np.random.Generator) -> dict:
    return dict(
        height=float(rng.uniform(1.55, 1.92) if rng.random() > 0.1 else rng.uniform(1.1, 1.4)),
        stride=float(rng.uniform(0, 1)), phase=float(rng.uniform(0, 2 * math.pi)),
        top=jitter(rng, pick(rng, CLOTHES), 14),  # type: ignore[arg-type]
        legs=jitter(rng, pick(rng, CLOTHES), 14),  # type: ignore[arg-type]
        skin=jitter(rng, pick(rng, SKIN), 8),  # type: ignore[arg-type]
    )  # fmt: skip


def pedestrians(
    rng: np.random.Generator, side: int, kerb: float, walk: float, travel: float, busy: float
) -> list[Pedestrian]:
    """Walkers on the pavement of ``side``; ``busy`` scales how many."""
    people, z = [], float(rng.uniform(6, 14))
    while z < travel + 90:
        x = kerb + side * float(rng.uniform(0.6, max(0.7, walk - 0.4)))
        v = float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.15))
        person = _person(rng)
        hair = jitter(rng, pick(rng, HAIR), 8)  # type: ignore[arg-type]
        people.append(Pedestrian(x, z, v, hair=hair, **person))
        z += float(rng.uniform(4, 16)) / busy
    return people


def _car(rng: np.random.Generator, x: float, z: float, v: float, facing: int) -> Car:
    paint = jitter(rng, pick(rng, PAINT), 10)  # type: ignore[arg-type]
    glass = jitter(rng, pick(rng, GLASS), 8)  # type: ignore[arg-type]
    if rng.random() < 0.15:  # van
        size = rng.uniform((1.9, 4.8, 2.0), (2.2, 6.5, 2.6))  # width, length, height
        return Car(x, z, v, *(float(a) for a in size), 0.0, paint, glass, facing)  # type: ignore[arg-type]
    size = rng.uniform((1.65, 3.8, 0.8, 0.45), (1.9, 4.8, 1.0, 0.6))  # width, length, body, cabin
    return Car(x, z, v, *(float(a) for a in size), paint, glass, facing)  # type: ignore[arg-type]


def parked_cars(rng: np.random.Generator, side: int, kerb: float, end: float) -> list[Car]:
    """Cars parked along the kerb of ``side``, with some empty spaces."""
    cars, z = [], float(rng.uniform(-3, 6))
    while z < min(end, 220):
        car = _car(rng, 0.0, z, 0.0, int(rng.choice([-1, 1])))
        if rng.random() > 0.2:  # else an empty parking space
            cars.append(dataclasses.replace(car, x=kerb - side * (0.35 + car.width / 2)))
        z += car.length + float(rng.uniform(0.8, 6))
    return cars


def traffic(rng: np.random.Generator, centre: float, v: float, facing: int, travel: float, end: float,
            busy: float) -> list[Car]:  # fmt: skip
    """Cars driving at ``v`` m per frame in the lane centred on X = ``centre``."""
    cars = []
    lo, hi = (8.0, end) if v > 0 else (travel * 0.3, end + abs(v) * MAX_FRAMES_PER_SEQUENCE)
    z = lo + float(rng.uniform(0, 14))
    while z < min(hi, 400):
        x, dv = centre + float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.03, 0.03))
        car = _car(rng, x, z, v + dv, facing)
        cars.append(car)
        z += car.length + float(rng.uniform(6, 40)) / busy
    return cars


def cyclists(rng: np.random.Generator, lane: float, kerb_l: float, kerb_r: float, park: tuple[bool, bool],
             speed: float, travel: float) -> list[Cyclist]:  # fmt: skip
    """Riders: one ahead of the camera all sequence, sometimes one oncoming and one crossing."""
    def rider(x: float, z: float, vx: float, vz: float, heading: float) -> Cyclist:
        person = _person(rng)
        bike = jitter(rng, pick(rng, PAINT), 10)  # type: ignore[arg-type]
        helmet = jitter(rng, pick(rng, CLOTHES), 10)  # type: ignore[arg-type]
        return Cyclist(x, z, vx, vz, heading, bike, person["top"], person["legs"], person["skin"], helmet,
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

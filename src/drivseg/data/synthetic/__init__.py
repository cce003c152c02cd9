"""Procedural driving scenes in CamVid's 11 classes: the embedded dataset that needs no download.

A scene is a small 3D street (road, pavements, building rows, trees, fences, poles, signs, cars,
pedestrians, cyclists) seen through a pinhole camera. Every shape is projected once and rasterised
by the same PIL call into the image and into the mask, so labels are exact; lane markings, windows,
shadows, textures and noise touch the image only and never cross a label boundary.

Frames of a sequence share a ``SceneStyle`` (colours, street layout, static objects) while the
camera drives forward and traffic moves, like the short video sequences of CamVid. Files are named
``synthNN_FFFFFF.png`` so ``sequence_from_prefix`` keeps a sequence inside one split.

Modules: ``camera`` (projection and the image+mask canvas), ``static_objects`` and ``road_users``
(what is drawn), ``layout`` and ``style`` (where it stands and what a sequence shares), ``render``
and ``finish`` (one frame), ``writer`` (the dataset on disk and its ``DatasetSource``).
"""

from __future__ import annotations

from drivseg.data.synthetic.layout import MAX_FRAMES_PER_SEQUENCE
from drivseg.data.synthetic.render import MIN_SIZE, render_scene
from drivseg.data.synthetic.style import SceneStyle, sample_style
from drivseg.data.synthetic.writer import (
    DEFAULT_COUNTS,
    DEFAULT_FRAMES_PER_SEQUENCE,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    GENERATOR_VERSION,
    MANIFEST,
    SYNTHETIC,
    _save_png,
    default_synthetic_root,
    prepare_synthetic,
    write_synthetic_dataset,
)

__all__ = [
    "DEFAULT_COUNTS",
    "DEFAULT_FRAMES_PER_SEQUENCE",
    "DEFAULT_SEED",
    "DEFAULT_SIZE",
    "GENERATOR_VERSION",
    "MANIFEST",
    "MAX_FRAMES_PER_SEQUENCE",
    "MIN_SIZE",
    "SYNTHETIC",
    "SceneStyle",
    "default_synthetic_root",
    "prepare_synthetic",
    "render_scene",
    "sample_style",
    "write_synthetic_dataset",
]

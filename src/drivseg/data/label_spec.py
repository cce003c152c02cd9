"""Label specs: class names, palette, and the map from raw mask values to train ids.

Every dataset owns exactly one ``LabelSpec``. The loader, the metrics, the W&B class labels and
every visualisation read class information from it, so a dataset's classes are defined once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSpec:
    """Classes of a dataset and how raw mask values become train ids.

    Attributes:
        name: short name used in messages (``camvid``).
        class_names: train id ``i`` is ``class_names[i]``.
        palette: RGB colour of each train id, same length as ``class_names``.
        raw_to_train: raw mask value -> train id; raw values listed in ``void_values`` map to 255.
            Raw values in neither are an error (the mask does not match this spec).
        void_values: raw values that mean "ignore" (void / unlabelled).
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    raw_to_train: dict[int, int]
    void_values: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.class_names):
            raise ValueError(
                f"label spec {self.name}: {len(self.class_names)} class names but "
                f"{len(self.palette)} palette colours"
            )
        bad = {r: t for r, t in self.raw_to_train.items() if not 0 <= t < self.num_classes}
        if bad:
            raise ValueError(f"label spec {self.name}: train ids out of range in {bad}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def valid_raw_values(self) -> frozenset[int]:
        return frozenset(self.raw_to_train) | self.void_values

    def lookup_table(self, size: int = 65536) -> np.ndarray:
        """A vectorised raw -> train id table; raw values outside the spec map to -1 (flagged)."""
        lut = np.full(size, -1, dtype=np.int32)
        for raw, train in self.raw_to_train.items():
            lut[raw] = train
        for raw in self.void_values:
            lut[raw] = IGNORE_INDEX
        return lut

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """Map a raw label map to train ids (uint8, void = 255).

        Raises ``ValueError`` listing the unexpected raw values when the mask does not fit the spec;
        callers add the file name.
        """
        lut = self._lut()
        mapped = lut[raw.astype(np.int64, copy=False)]
        if (mapped < 0).any():
            unexpected = sorted(int(v) for v in np.unique(raw[mapped < 0]))
            raise ValueError(
                f"has values {unexpected[:20]} outside the {self.name} label spec "
                f"(expected {sorted(self.valid_raw_values)[:40]})"
            )
        return mapped.astype(np.uint8)

    def _lut(self) -> np.ndarray:
        # frozen dataclass: cache the table on the instance without making it a field
        lut = self.__dict__.get("_cached_lut")
        if lut is None:
            lut = self.lookup_table()  # covers every uint8/uint16 mask value
            object.__setattr__(self, "_cached_lut", lut)
        return lut

    def colorize(self, train_ids: np.ndarray, void_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
        """Train id map (H, W) -> RGB image (H, W, 3) using the palette; 255 -> ``void_color``."""
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: self.num_classes] = np.asarray(self.palette, dtype=np.uint8)
        table[IGNORE_INDEX] = void_color
        return table[train_ids]

    def wandb_class_labels(self) -> dict[int, str]:
        """Class labels for ``wandb.Image`` masks, void included."""
        return {**dict(enumerate(self.class_names)), IGNORE_INDEX: "void"}


def identity_spec(
    name: str,
    class_names: tuple[str, ...],
    palette: tuple[tuple[int, int, int], ...],
    void_values: frozenset[int] = frozenset(),
) -> LabelSpec:
    """A spec whose raw values already are train ids 0..N-1 (plus optional void values)."""
    return LabelSpec(name, class_names, palette, {i: i for i in range(len(class_names))}, void_values)

"""Mask generators: each draws a (H, W) float32 mask in [0, 1] where 1 = damaged.

A generator is a callable `generator(rng, height, width)`. Given the same numpy Generator
state it draws the same mask, so validation and test masks are a pure function of
(seed, sample index) once the data set seeds `rng` from them. Sizes in the presets are
given at a reference resolution and scale with the image. Stroke widths are OpenCV's line
`thickness`, as the CIFAR-10 paper's and LaMa's mask code draw them: a stroke is painted up
to 2 px wider (thickness 1, 2, 3, 4 paint 1, 3, 5, 5 px).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

FILLS = ("zeros", "ones", "colour", "noise", "image")


def _scale(height: int, width: int, reference: int) -> float:
    return min(height, width) / reference


def _clip(value: float, low: float, high: float) -> float:
    return min(max(float(value), low), high)


def _pair(owner: object, key: str, value, low: float, high: float = math.inf, above=False):
    """A (low, high) range key, checked where it is set (`above`: its low end must exceed
    `low`): a bad one would fail at the first draw, in numpy or OpenCV, naming no key."""
    pair = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else ()
    fits = len(pair) == 2 and pair[0] <= pair[1] <= high
    if not fits or pair[0] < low or (above and pair[0] == low):
        bounds = f"{low} {'<' if above else '<='} low <= high"
        bounds += f" <= {high}" if high < math.inf else ""
        raise ValueError(f"{type(owner).__name__}: {key}={value!r}, expected [low, high], {bounds}")
    return pair


def _weights(owner: object, key: str, weights: Mapping[str, float]) -> dict[str, float]:
    """Non-negative weights, one of them positive (probabilities once normalised)."""
    if any(not weight >= 0 for weight in weights.values()) or not sum(weights.values()) > 0:
        raise ValueError(
            f"{type(owner).__name__}: {key}={dict(weights)}, expected weights >= 0, one of them > 0"
        )
    return dict(weights)


def _uniform_int(rng: np.random.Generator, bounds: Sequence[int]) -> int:
    low, high = bounds
    return int(rng.integers(low, high + 1))


class MaskGenerator:
    """Base class: rejection-samples `draw` until the hole ratio lies in [min_ratio, max_ratio].

    `fill` names what the hole is filled with when the mask damages an image (see damage.py).
    """

    max_tries = 50

    def __init__(self, min_ratio: float = 0.0, max_ratio: float = 1.0, fill: str = "noise"):
        if not 0.0 <= min_ratio <= max_ratio <= 1.0:
            raise ValueError(
                f"{type(self).__name__}: need 0 <= min_ratio <= max_ratio <= 1, "
                f"got min_ratio={min_ratio}, max_ratio={max_ratio}"
            )
        if fill not in FILLS:
            raise ValueError(f"{type(self).__name__}: fill must be one of {FILLS}, got {fill!r}")
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio
        self.fill = fill

    def draw(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        best, best_gap = None, math.inf
        for _ in range(self.max_tries):
            mask = self.draw(rng, height, width)
            ratio = float(mask.mean())
            gap = max(self.min_ratio - ratio, ratio - self.max_ratio, 0.0)
            if gap == 0.0:
                return mask
            if gap < best_gap:
                best, best_gap = mask, gap
        warnings.warn(
            f"{type(self).__name__}: no mask with hole ratio in "
            f"[{self.min_ratio}, {self.max_ratio}] "
            f"after {self.max_tries} draws at {height}x{width}; using the closest. "
            "Widen the ratio bounds or change the shape parameters.",
            stacklevel=2,
        )
        return best


class SquareMask(MaskGenerator):
    """Axis-aligned squares of random side (fraction of the short side) at independent x, y."""

    def __init__(self, count=(1, 1), side=(0.2, 0.5), **kwargs):
        super().__init__(**kwargs)
        self.count = _pair(self, "count", count, 0)
        self.side = _pair(self, "side", side, 0, 1, above=True)

    def draw(self, rng, height, width):
        mask = np.zeros((height, width), np.float32)
        short = min(height, width)
        for _ in range(_uniform_int(rng, self.count)):
            side = max(1, int(round(rng.uniform(*self.side) * short)))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            mask[top : top + side, left : left + side] = 1.0
        return mask


class LineMask(MaskGenerator):
    """Straight lines of random length and thickness, as in the CIFAR-10 U-Net paper.

    `length` is a fraction of the image diagonal; `thickness` is OpenCV's, at `reference` px.
    """

    def __init__(self, count=(1, 10), length=(0.2, 1.0), thickness=(1, 3), reference=32, **kwargs):
        super().__init__(**kwargs)
        self.count, self.length = _pair(self, "count", count, 0), _pair(self, "length", length, 0)
        self.thickness = _pair(self, "thickness", thickness, 1)
        self.reference = reference

    def draw(self, rng, height, width):
        mask = np.zeros((height, width), np.uint8)
        scale = _scale(height, width, self.reference)
        diagonal = math.hypot(height, width)
        for _ in range(_uniform_int(rng, self.count)):
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(*self.length) * diagonal
            x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
            thickness = max(1, int(round(rng.uniform(*self.thickness) * scale)))
            cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), 1, thickness)
        return mask.astype(np.float32)


class FreeFormMask(MaskGenerator):
    """DeepFill v2 brush strokes: polylines of a few vertices with round joints."""

    def __init__(self, strokes=(1, 3), vertices=(4, 11), width=(12, 40), reference=256, **kwargs):
        super().__init__(**kwargs)
        self.strokes = _pair(self, "strokes", strokes, 0)
        self.vertices = _pair(self, "vertices", vertices, 1)
        self.width = _pair(self, "width", width, 1)
        self.reference = reference

    def draw(self, rng, height, width):
        mask = np.zeros((height, width), np.uint8)
        scale = _scale(height, width, self.reference)
        radius = math.hypot(height, width) / 8
        mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
        for _ in range(_uniform_int(rng, self.strokes)):
            count = _uniform_int(rng, self.vertices)
            brush = max(1, int(round(rng.uniform(*self.width) * scale)))
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            low, high = (
                mean_angle - rng.uniform(0, angle_range),
                mean_angle + rng.uniform(0, angle_range),
            )
            for step in range(count):
                angle = rng.uniform(low, high)
                if step % 2 == 0:
                    angle = 2 * math.pi - angle
                length = _clip(rng.normal(radius, radius / 2), 0, 2 * radius)
                nx = _clip(x + length * math.cos(angle), 0, width - 1)
                ny = _clip(y + length * math.sin(angle), 0, height - 1)
                cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 1, brush)
                cv2.circle(mask, (int(nx), int(ny)), brush // 2, 1, -1)
                x, y = nx, ny
        return mask.astype(np.float32)


class IrregularMask(MaskGenerator):
    """LaMa-style irregular strokes plus optional boxes (thin, medium, thick presets).

    Lengths, widths and box sides are in pixels at `reference` px and scale with the image.
    """

    def __init__(
        self,
        strokes=(4, 5),
        max_width=50,
        max_length=100,
        max_angle=4,
        box_prob=0.0,
        boxes=(1, 3),
        box_side=(10, 50),
        reference=256,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= box_prob <= 1:
            raise ValueError(f"IrregularMask: box_prob={box_prob!r}, expected 0 <= box_prob <= 1")
        self.strokes = _pair(self, "strokes", strokes, 0)
        self.max_width, self.max_length, self.max_angle = max_width, max_length, max_angle
        self.box_prob, self.boxes = box_prob, _pair(self, "boxes", boxes, 0)
        self.box_side, self.reference = _pair(self, "box_side", box_side, 0), reference

    def draw(self, rng, height, width):
        mask = np.zeros((height, width), np.uint8)
        scale = _scale(height, width, self.reference)
        for stroke in range(_uniform_int(rng, self.strokes)):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            segments = 1 + int(rng.integers(0, 5))
            # One draw per parameter for all segments of the stroke: far fewer RNG calls.
            angles = 0.01 + rng.uniform(0, self.max_angle, segments)
            if stroke % 2 == 0:
                angles = 2 * math.pi - angles
            lengths = (1 + rng.uniform(0, self.max_length, segments)) * scale
            brushes = np.maximum(1, np.rint((1 + rng.uniform(0, self.max_width, segments)) * scale))
            for angle, length, brush in zip(
                angles.tolist(), lengths.tolist(), brushes.tolist(), strict=True
            ):
                nx = _clip(x + length * math.sin(angle), 0, width - 1)
                ny = _clip(y + length * math.cos(angle), 0, height - 1)
                cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 1, int(brush))
                x, y = nx, ny
        if rng.random() < self.box_prob:
            for _ in range(_uniform_int(rng, self.boxes)):
                box_h = max(1, int(rng.uniform(*self.box_side) * scale))
                box_w = max(1, int(rng.uniform(*self.box_side) * scale))
                top = int(rng.integers(0, max(1, height - box_h + 1)))
                left = int(rng.integers(0, max(1, width - box_w + 1)))
                mask[top : top + box_h, left : left + box_w] = 1
        return mask.astype(np.float32)


class GreyscaleMask(MaskGenerator):
    """Continuous masks: smooth random fields, soft blobs, or one damage level everywhere.

    `kinds` maps each kind to its probability. A uniform mask's level is drawn within the
    ratio bounds, so denoising at a known strength becomes inpainting.
    """

    def __init__(
        self,
        kinds: Mapping[str, float] | None = None,
        field_cells=(2, 6),
        blobs=(1, 4),
        blob_radius=(0.1, 0.3),
        blur=(0.02, 0.08),
        **kwargs,
    ):
        super().__init__(**kwargs)
        kinds = dict(kinds or {"field": 1.0, "blobs": 1.0, "uniform": 1.0})
        unknown = set(kinds) - {"field", "blobs", "uniform"}
        if unknown:
            raise ValueError(
                f"GreyscaleMask: unknown kinds {sorted(unknown)}; use field, blobs, uniform"
            )
        self.kind_names = list(kinds)
        weights = np.asarray(list(_weights(self, "kinds", kinds).values()), np.float64)
        self.kind_probs = weights / weights.sum()
        self.field_cells = _pair(self, "field_cells", field_cells, 1)
        self.blobs = _pair(self, "blobs", blobs, 0)
        self.blob_radius = _pair(self, "blob_radius", blob_radius, 0, above=True)
        self.blur = _pair(self, "blur", blur, 0, above=True)

    def draw(self, rng, height, width):
        kind = self.kind_names[int(rng.choice(len(self.kind_names), p=self.kind_probs))]
        return getattr(self, f"_{kind}")(rng, height, width)

    def _uniform(self, rng, height, width):
        level = rng.uniform(self.min_ratio, self.max_ratio)
        return np.full((height, width), level, np.float32)

    def _field(self, rng, height, width):
        cells = _uniform_int(rng, self.field_cells)
        coarse = rng.random((cells + 1, cells + 1)).astype(np.float32)
        field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        # Stretch around a random threshold so that parts are intact and parts fully damaged.
        threshold = rng.uniform(0.3, 0.7)
        return np.clip((field - threshold) * rng.uniform(2, 6) + 0.5, 0, 1).astype(np.float32)

    def _blobs(self, rng, height, width):
        mask = np.zeros((height, width), np.float32)
        short = min(height, width)
        for _ in range(_uniform_int(rng, self.blobs)):
            axes = (
                max(1, int(rng.uniform(*self.blob_radius) * short)),
                max(1, int(rng.uniform(*self.blob_radius) * short)),
            )
            centre = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
        sigma = rng.uniform(*self.blur) * short
        return np.clip(cv2.GaussianBlur(mask, (0, 0), sigma), 0, 1)


class MixedMask(MaskGenerator):
    """Draws from one of several generators, chosen by weight; its own ratio bounds apply too.

    A draw outside those bounds is redrawn from a newly chosen generator: one that often
    misses them is drawn less often than its weight says.
    """

    def __init__(
        self, components: Mapping[str, MaskGenerator], weights: Mapping[str, float], **kwargs
    ):
        super().__init__(**kwargs)
        missing = set(weights) - set(components)
        if missing:
            raise ValueError(f"MixedMask: weights name unknown components {sorted(missing)}")
        weights = _weights(self, "weights", weights)
        self.components = [components[name] for name in weights if weights[name] > 0]
        probs = np.asarray([weights[name] for name in weights if weights[name] > 0], np.float64)
        self.probs = probs / probs.sum()

    def draw(self, rng, height, width):
        return self.components[int(rng.choice(len(self.components), p=self.probs))](
            rng, height, width
        )

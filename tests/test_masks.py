"""Mask generators, as configured in conf/mask/*.yaml and composed by Hydra."""

from __future__ import annotations

import copy
import inspect
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from inpaint.config import mask_generator_names
from inpaint.data.masks import (
    FreeFormMask,
    GreyscaleMask,
    IrregularMask,
    LineMask,
    MaskGenerator,
    MixedMask,
    SquareMask,
)

ROOT = Path(__file__).resolve().parents[1]
MASK_NAMES = mask_generator_names()  # `files` reads masks: tests/test_evaluate.py
SIZES = (64, 256)
DRAWS = {64: 200, 256: 60}
GREYSCALE_TARGET = "inpaint.data.masks.GreyscaleMask"
MIXED_TARGET = "inpaint.data.masks.MixedMask"


@pytest.fixture(scope="module")
def mask_configs() -> dict[str, DictConfig]:
    """Every mask config composed through the root config, as `python -m inpaint.run` does."""
    configs = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for name in MASK_NAMES:
            cfg = compose("train", overrides=[f"mask={name}"])
            configs[name] = cfg.mask
    return configs


@pytest.fixture(scope="module")
def drawn(mask_configs) -> dict[tuple[str, int], tuple[np.ndarray, list]]:
    """DRAWS[size] masks per config and size, seeds 0.., with the warnings they raised."""
    result = {}
    for name, cfg in mask_configs.items():
        generator = instantiate(cfg)
        for size in SIZES:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                masks = [
                    generator(np.random.default_rng(seed), size, size)
                    for seed in range(DRAWS[size])
                ]
            result[name, size] = (masks, list(caught))
    return result


def soft_share(cfg: DictConfig) -> float:
    """The expected share of masks drawn by a greyscale generator (0 for binary generators)."""
    if cfg._target_ == GREYSCALE_TARGET:
        return 1.0
    if cfg._target_ == MIXED_TARGET:
        weights = {name: w for name, w in cfg.weights.items() if w > 0}
        total = sum(weights.values())
        return sum(w * soft_share(cfg.components[name]) for name, w in weights.items()) / total
    return 0.0


def unbounded(cfg: DictConfig) -> DictConfig:
    """A copy of a config with ratio bounds [0, 1], so draws are not rejection-sampled."""
    cfg = copy.deepcopy(cfg)
    cfg.min_ratio, cfg.max_ratio = 0.0, 1.0
    return cfg


def test_every_config_is_found():
    assert {"square", "lines", "freeform", "thin", "medium", "thick", "greyscale", "mixed"} <= set(
        MASK_NAMES
    )


@pytest.mark.parametrize("name", MASK_NAMES)
def test_config_instantiates_a_mask_generator(mask_configs, name):
    generator = instantiate(mask_configs[name])
    assert isinstance(generator, MaskGenerator)
    assert generator.min_ratio == mask_configs[name].min_ratio
    assert generator.max_ratio == mask_configs[name].max_ratio
    assert generator.fill == mask_configs[name].fill


def test_mixed_config_composes_its_components(mask_configs):
    mixed = instantiate(mask_configs["mixed"])
    assert isinstance(mixed, MixedMask)
    positive = [name for name, weight in mask_configs["mixed"].weights.items() if weight > 0]
    assert len(mixed.components) == len(positive)
    assert mixed.probs.sum() == pytest.approx(1.0)
    expected = {
        "square": SquareMask,
        "lines": LineMask,
        "freeform": FreeFormMask,
        "thin": IrregularMask,
    }
    for component, name in zip(mixed.components, positive, strict=True):
        if name in expected:
            assert isinstance(component, expected[name])
    weights = np.array([mask_configs["mixed"].weights[name] for name in positive], np.float64)
    np.testing.assert_allclose(mixed.probs, weights / weights.sum())


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", MASK_NAMES)
def test_masks_dtype_shape_and_range(drawn, name, size):
    masks, _ = drawn[name, size]
    for mask in masks:
        assert mask.dtype == np.float32
        assert mask.shape == (size, size)
        assert np.isfinite(mask).all()
        assert mask.min() >= 0.0 and mask.max() <= 1.0


@pytest.mark.parametrize("name", MASK_NAMES)
def test_masks_on_a_non_square_image(mask_configs, name):
    generator = instantiate(mask_configs[name])
    for seed in range(20):
        mask = generator(np.random.default_rng(seed), 40, 72)
        assert mask.shape == (40, 72)
        assert mask.dtype == np.float32
        assert 0.0 <= mask.min() and mask.max() <= 1.0


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", MASK_NAMES)
def test_binary_or_greyscale_values(mask_configs, drawn, name, size):
    masks, _ = drawn[name, size]
    expected = soft_share(mask_configs[name])
    soft = np.array([((mask > 0) & (mask < 1)).any() for mask in masks])
    if expected == 0:
        values = np.concatenate([mask.ravel() for mask in masks])
        assert set(np.unique(values).tolist()) <= {0.0, 1.0}
    elif expected == 1:
        assert soft.mean() > 0.9, "greyscale masks should hold values strictly between 0 and 1"
        values = np.concatenate([mask.ravel() for mask in masks])
        assert ((values > 0) & (values < 1)).mean() > 0.2
    else:
        # A mixture with greyscale components: soft masks about as often as weighted.
        assert 0.4 * expected < soft.mean() < min(1.0, 1.6 * expected), (soft.mean(), expected)
        for mask in np.array(masks)[~soft]:
            assert set(np.unique(mask).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", MASK_NAMES)
def test_hole_ratio_within_bounds_and_plausible(mask_configs, drawn, name, size):
    cfg = mask_configs[name]
    masks, caught = drawn[name, size]
    assert not [w for w in caught if "hole ratio" in str(w.message)], "rejection sampling gave up"
    ratios = np.array([mask.mean() for mask in masks])
    assert ratios.min() >= cfg.min_ratio - 1e-6
    assert ratios.max() <= cfg.max_ratio + 1e-6
    span = cfg.max_ratio - cfg.min_ratio
    assert cfg.min_ratio + 0.1 * span < ratios.mean() < cfg.max_ratio - 0.1 * span
    assert 0.05 < ratios.mean() < 0.6
    assert ratios.std() > 0.02, "hole ratios should vary from mask to mask"


@pytest.mark.parametrize("name", MASK_NAMES)
def test_same_seed_same_mask_other_seed_other_mask(mask_configs, name):
    first, second = instantiate(mask_configs[name]), instantiate(mask_configs[name])
    for seed in range(5):
        a = first(np.random.default_rng(seed), 64, 64)
        b = second(np.random.default_rng(seed), 64, 64)
        np.testing.assert_array_equal(a, b)
    masks = [first(np.random.default_rng(seed), 64, 64) for seed in range(10)]
    distinct = {mask.tobytes() for mask in masks}
    assert len(distinct) >= 9


@pytest.mark.parametrize("name", MASK_NAMES)
def test_successive_draws_from_one_generator_differ(mask_configs, name):
    generator = instantiate(mask_configs[name])
    rng = np.random.default_rng(0)
    a, b = generator(rng, 64, 64), generator(rng, 64, 64)
    assert not np.array_equal(a, b)


def test_uniform_greyscale_is_constant(mask_configs):
    cfg = copy.deepcopy(mask_configs["greyscale"])
    cfg.kinds = {"uniform": 1.0}
    generator = instantiate(cfg)
    levels = []
    for seed in range(50):
        mask = generator(np.random.default_rng(seed), 48, 64)
        assert mask.shape == (48, 64)
        assert mask.dtype == np.float32
        assert np.all(mask == mask[0, 0])
        levels.append(float(mask[0, 0]))
    assert min(levels) >= cfg.min_ratio and max(levels) <= cfg.max_ratio
    assert np.std(levels) > 0.05, "the damage level should be drawn, not fixed"


def test_a_greyscale_kind_of_weight_zero_is_never_drawn():
    generator = GreyscaleMask(kinds={"uniform": 1.0, "field": 0.0}, min_ratio=0.0, max_ratio=1.0)
    for seed in range(20):
        assert np.ptp(generator(np.random.default_rng(seed), 16, 16)) == 0  # uniform only


def test_greyscale_field_and_blob_kinds_are_soft():
    for kind in ("field", "blobs"):
        generator = GreyscaleMask(kinds={kind: 1.0}, min_ratio=0.0, max_ratio=1.0)
        for seed in range(10):
            mask = generator(np.random.default_rng(seed), 64, 64)
            assert np.unique(mask).size > 2, kind


def test_greyscale_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown kinds"):
        GreyscaleMask(kinds={"stripes": 1.0})


def square_bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (80, 48)])
def test_square_masks_are_filled_axis_aligned_squares(mask_configs, shape):
    cfg = mask_configs["square"]
    assert list(cfg.count) == [1, 1]
    generator = instantiate(cfg)
    short = min(shape)
    for seed in range(60):
        mask = generator(np.random.default_rng(seed), *shape)
        top, bottom, left, right = square_bounding_box(mask)
        assert bottom - top == right - left, "the hole should be a square"
        assert mask[top:bottom, left:right].all(), "the square should be fully filled"
        assert mask.sum() == (bottom - top) * (right - left), "nothing outside the square"
        side = bottom - top
        assert cfg.side[0] * short - 1 <= side <= cfg.side[1] * short + 1


def test_square_positions_vary_independently():
    generator = SquareMask(side=(0.25, 0.25), min_ratio=0.0, max_ratio=1.0)
    corners = [
        square_bounding_box(generator(np.random.default_rng(seed), 64, 64))[::2]
        for seed in range(60)
    ]
    tops, lefts = np.array(corners).T
    assert len(set(tops.tolist())) > 10 and len(set(lefts.tolist())) > 10
    assert abs(np.corrcoef(tops, lefts)[0, 1]) < 0.5


@pytest.mark.parametrize("name", ["lines", "freeform", "medium"])
def test_stroke_sizes_scale_with_the_image(mask_configs, name):
    generator = instantiate(unbounded(mask_configs[name]))

    def mean_ratio(size: int) -> float:
        return float(
            np.mean([generator(np.random.default_rng(s), size, size).mean() for s in range(150)])
        )

    small, large = mean_ratio(32), mean_ratio(128)
    assert 0.65 < large / small < 1.5, (small, large)


def test_line_thickness_scales_with_reference():
    """Lines at 4x the reference size are about 4x thicker, so cover about the same share."""
    generator = LineMask(
        count=(1, 1), length=(0.5, 0.5), thickness=(2, 2), min_ratio=0, max_ratio=1
    )
    small = np.mean([generator(np.random.default_rng(s), 32, 32).mean() for s in range(100)])
    large = np.mean([generator(np.random.default_rng(s), 128, 128).mean() for s in range(100)])
    assert 0.65 < large / small < 1.5, (small, large)
    fixed = LineMask(
        count=(1, 1), length=(0.5, 0.5), thickness=(2, 2), reference=128, min_ratio=0, max_ratio=1
    )
    thin = np.mean([fixed(np.random.default_rng(s), 32, 32).mean() for s in range(100)])
    assert small > 1.5 * thin, "a larger reference should give thinner lines at the same size"


MASK_CLASSES = [SquareMask, LineMask, FreeFormMask, IrregularMask, GreyscaleMask]


@pytest.mark.parametrize("cls", MASK_CLASSES)
@pytest.mark.parametrize("bounds", [(0.6, 0.4), (-0.1, 0.5), (0.1, 1.5)])
def test_bad_ratio_bounds_raise(cls, bounds):
    with pytest.raises(ValueError, match="min_ratio"):
        cls(min_ratio=bounds[0], max_ratio=bounds[1])


RANGE_KEYS = [  # every constructor argument whose default is a (low, high) pair
    (cls, name)
    for cls in MASK_CLASSES
    for name, parameter in inspect.signature(cls).parameters.items()
    if isinstance(parameter.default, tuple) and len(parameter.default) == 2
]


def test_the_range_keys_are_found_by_signature():
    """An empty list would leave the test below with no cases, skipped, not failed."""
    assert len(RANGE_KEYS) >= 15 and (LineMask, "length") in RANGE_KEYS


@pytest.mark.parametrize(("cls", "key"), RANGE_KEYS, ids=lambda v: getattr(v, "__name__", v))
def test_every_range_key_refuses_a_reversed_pair_by_class_and_key(cls, key):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: {key}=\(0.6, 0.4\), expected \["):
        cls(**{key: (0.6, 0.4)})


@pytest.mark.parametrize("cls", MASK_CLASSES)
def test_unknown_fill_raises(cls):
    with pytest.raises(ValueError, match="fill"):
        cls(fill="glitter")


def underlying_error(cfg: DictConfig) -> BaseException:
    with pytest.raises(Exception) as excinfo:  # noqa: B017 - Hydra wraps the real error
        instantiate(cfg)
    error = excinfo.value
    while error.__cause__ is not None:
        error = error.__cause__
    return error


@pytest.mark.parametrize("name", MASK_NAMES)
def test_config_with_bad_bounds_raises(mask_configs, name):
    cfg = copy.deepcopy(mask_configs[name])
    cfg.min_ratio, cfg.max_ratio = 0.5, 0.2
    error = underlying_error(cfg)
    assert isinstance(error, ValueError) and "min_ratio" in str(error)


@pytest.mark.parametrize("name", MASK_NAMES)
def test_config_with_unknown_fill_raises(mask_configs, name):
    cfg = copy.deepcopy(mask_configs[name])
    cfg.fill = "glitter"
    error = underlying_error(cfg)
    assert isinstance(error, ValueError) and "glitter" in str(error)


def test_mixed_weights_naming_unknown_component_raise():
    with pytest.raises(ValueError, match="unknown components.*'bogus'"):
        MixedMask(components={"square": SquareMask()}, weights={"square": 1.0, "bogus": 1.0})


def test_mixed_config_with_unknown_weight_raises():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["mask=mixed", "+mask.weights.bogus=1.0"])
    error = underlying_error(cfg.mask)
    assert isinstance(error, ValueError) and "bogus" in str(error)


def test_mixed_without_positive_weight_raises():
    with pytest.raises(ValueError, match="weights >= 0, one of them > 0"):
        MixedMask(components={"square": SquareMask()}, weights={"square": 0.0})


def test_mixed_draws_from_every_weighted_component():
    square = SquareMask(side=(0.3, 0.3), min_ratio=0.0, max_ratio=1.0)
    uniform = GreyscaleMask(kinds={"uniform": 1.0}, min_ratio=0.5, max_ratio=0.5)
    never = GreyscaleMask(kinds={"uniform": 1.0}, min_ratio=0.9, max_ratio=0.9)
    mixed = MixedMask(
        components={"square": square, "uniform": uniform, "never": never},
        weights={"square": 3.0, "uniform": 1.0, "never": 0.0},
    )
    kinds = []
    for seed in range(200):
        mask = mixed(np.random.default_rng(seed), 32, 32)
        assert not np.allclose(mask, 0.9), "a zero-weight component was drawn"
        kinds.append("uniform" if np.allclose(mask, 0.5) else "square")
    share = kinds.count("square") / len(kinds)
    assert 0.6 < share < 0.9, share


def test_mixture_bounds_apply_on_top_of_components():
    uniform = GreyscaleMask(kinds={"uniform": 1.0}, min_ratio=0.0, max_ratio=1.0)
    mixed = MixedMask(components={"u": uniform}, weights={"u": 1.0}, min_ratio=0.3, max_ratio=0.6)
    for seed in range(30):
        assert 0.3 <= mixed(np.random.default_rng(seed), 16, 16).mean() <= 0.6


def test_unreachable_bounds_warn_and_return_closest():
    generator = SquareMask(side=(0.1, 0.6), min_ratio=0.9, max_ratio=1.0)
    with pytest.warns(UserWarning, match="no mask with hole ratio"):
        mask = generator(np.random.default_rng(0), 32, 32)
    rng = np.random.default_rng(0)  # the same draws: the closest is the largest
    ratios = [generator.draw(rng, 32, 32).mean() for _ in range(generator.max_tries)]
    assert mask.shape == (32, 32) and mask.mean() == max(ratios) > min(ratios)


def test_a_count_range_includes_its_upper_bound():
    generator = SquareMask(count=(0, 1), side=(0.5, 0.5))
    drawn = {bool(generator.draw(np.random.default_rng(seed), 16, 16).any()) for seed in range(40)}
    assert drawn == {False, True}


def test_configs_load_as_plain_yaml():
    """Every config except the mixture instantiates straight from its file too."""
    for name in MASK_NAMES:
        cfg = OmegaConf.load(ROOT / "conf" / "mask" / f"{name}.yaml")
        if "defaults" in cfg:
            continue
        generator = instantiate(cfg)
        mask = generator(np.random.default_rng(0), 32, 32)
        assert mask.shape == (32, 32)


@pytest.mark.parametrize(
    ("box_prob", "low", "high"), [(0.0, 0.0, 0.0), (0.5, 0.3, 0.7), (1.0, 1.0, 1.0)]
)
def test_irregular_boxes_are_drawn_with_box_prob(box_prob, low, high):
    """Without strokes a mask is empty unless boxes are drawn: as often as box_prob says."""
    generator = IrregularMask(strokes=(0, 0), box_prob=box_prob, min_ratio=0.0, max_ratio=1.0)
    drawn = [generator(np.random.default_rng(seed), 32, 32).any() for seed in range(60)]
    assert low <= np.mean(drawn) <= high, np.mean(drawn)


def test_square_masks_reach_every_row_and_column():
    """Every top-left corner that keeps the square inside the image is drawn, the last included,
    so squares touch the bottom row and the right column too."""
    height, width, side = 8, 12, 4
    generator = SquareMask(side=(0.5, 0.5), min_ratio=0.0, max_ratio=1.0)
    masks = [generator(np.random.default_rng(seed), height, width) for seed in range(100)]
    corners = np.array([square_bounding_box(mask)[::2] for mask in masks])
    assert set(corners[:, 0].tolist()) == set(range(height - side + 1))
    assert set(corners[:, 1].tolist()) == set(range(width - side + 1))
    assert any(mask[-1].any() for mask in masks) and any(mask[:, -1].any() for mask in masks)


def test_freeform_strokes_cover_the_whole_width_of_a_landscape_image():
    """Strokes wander over the whole image: each third of a wide image holds a fair share."""
    generator = FreeFormMask(min_ratio=0.0, max_ratio=1.0)
    height, width = 24, 96
    masks = np.array([generator(np.random.default_rng(seed), height, width) for seed in range(40)])
    thirds = [masks[:, :, i * width // 3 : (i + 1) * width // 3].mean() for i in range(3)]
    assert min(thirds) > 0.5 * masks.mean(), thirds


def test_line_length_is_a_fraction_of_the_diagonal():
    """One-pixel lines of a quarter of the diagonal: about that long unless cut by the border,
    never longer."""
    size, fraction = 48, 0.25
    generator = LineMask(
        count=(1, 1),
        length=(fraction, fraction),
        thickness=(1, 1),
        reference=size,
        min_ratio=0.0,
        max_ratio=1.0,
    )
    lengths = []
    for seed in range(40):
        rows, cols = np.nonzero(generator(np.random.default_rng(seed), size, size))
        lengths.append(np.hypot(rows.max() - rows.min(), cols.max() - cols.min()))
    expected = fraction * np.hypot(size, size)
    assert max(lengths) <= expected + 2
    assert np.median(lengths) > 0.8 * expected, (np.median(lengths), expected)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["mask=square", "mask.count=[3,1]"],
            r"SquareMask: count=\[3, 1\], expected \[low, high\]",
        ),
        (["mask=square", "mask.count=3"], r"SquareMask: count=3, expected \[low, high\]"),
        (["mask=square", "mask.side=[0.5,1.5]"], r"side=\[0.5, 1.5\].*0 < low <= high <= 1"),
        (["mask=square", "mask.side=[0,0.5]"], r"side=\[0, 0.5\].*0 < low"),
        (["mask=lines", "mask.thickness=[0,2]"], r"LineMask: thickness=\[0, 2\].*1 <= low"),
        (["mask=freeform", "mask.vertices=[0,3]"], r"FreeFormMask: vertices=.*1 <= low"),
        (["mask=thick", "mask.box_prob=1.5"], r"IrregularMask: box_prob=1.5, expected 0 <="),
        (["mask=greyscale", "mask.blur=[0,0]"], r"GreyscaleMask: blur=\[0, 0\].*0 < low"),
        (["mask=greyscale", "mask.kinds.field=-1"], r"GreyscaleMask: kinds=.*weights >= 0"),
        (["mask=blind", "mask.weights.square=-5"], r"MixedMask: weights=.*weights >= 0"),
    ],
)
def test_a_bad_shape_parameter_is_refused_by_name_when_the_mask_is_built(overrides, message):
    """At the first draw it failed in numpy or OpenCV ("low >= high"), naming no key."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    error = underlying_error(cfg.mask)
    assert isinstance(error, ValueError) and re.search(message, str(error)), error

"""The typed binding boundary: the device and precision parser (mgfast.options) and the option
structs of mgfast._core (PreprocessOptions, ContinuumOptions, SimulateOptions, EwOptions)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import numpy as np
import pytest

from mgfast import _core, engine, grid
from mgfast.options import (
    CPU_PRECISIONS,
    GPU_PRECISIONS,
    PRECISIONS,
    Device,
    cuda_index,
    parse_device,
    parse_precision,
)

preprocess_module = importlib.import_module("mgfast.preprocess")
simulate_module = importlib.import_module("mgfast.simulate")
ew_module = importlib.import_module("mgfast.ew")


# --- devices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "index", "canonical"),
    [
        ("cpu", "cpu", 0, "cpu"),
        ("cuda", "cuda", 0, "cuda:0"),
        ("cuda:0", "cuda", 0, "cuda:0"),
        ("cuda:3", "cuda", 3, "cuda:3"),
        ("cuda:007", "cuda", 7, "cuda:7"),
        ("cuda:999999", "cuda", 999999, "cuda:999999"),
    ],
)
def test_devices_parse_to_one_canonical_spelling(text, kind, index, canonical):
    d = parse_device(text)
    assert (d.kind, d.index, str(d)) == (kind, index, canonical)
    assert d.is_cuda == (kind == "cuda")
    assert parse_device(str(d)) == d


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "gpu",
        "CPU",
        "Cuda",
        "cuda:",
        "cuda:-1",
        "cuda:x",
        "cuda:1.0",
        "cuda:1234567",
        " cpu",
        "cpu ",
        "cpu:0",
        "cuda:٣",
        None,
        0,
        b"cpu",
    ],
)
def test_a_bad_device_is_a_value_error_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"^backend: expected 'cpu', 'cuda' or 'cuda:N', got "):
        parse_device(bad, "backend")
    with pytest.raises(ValueError, match=r"^device: "):
        parse_device(bad)


def test_cuda_index_takes_gpus_only():
    assert cuda_index("cuda") == 0
    assert cuda_index("cuda:12") == 12
    with pytest.raises(ValueError, match=r"^device: expected 'cuda' or 'cuda:N', got 'cpu'$"):
        cuda_index("cpu")
    with pytest.raises(ValueError, match=r"^--gpu: "):
        parse_device("cpu", "--gpu", kinds=("cuda",))
    assert parse_device("cpu", kinds=("cpu",)) == Device("cpu")
    with pytest.raises(ValueError, match=r"^device: expected 'cpu', got 'cuda'$"):
        parse_device("cuda", kinds=("cpu",))


def test_the_package_has_one_parser():
    # engine re-exports it for the modules that import it from there
    assert engine.cuda_index is cuda_index
    assert (engine.CPU_PRECISIONS, engine.GPU_PRECISIONS, engine.PRECISIONS) == (
        CPU_PRECISIONS,
        GPU_PRECISIONS,
        PRECISIONS,
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: preprocess_module.preprocess(np.ones(grid.N_PIX), device="gpu"),
        lambda: simulate_module.simulate(1, device="gpu"),
        lambda: importlib.import_module("mgfast.matched_filter").match(
            np.ones(grid.N_PIX), device="gpu"
        ),
    ],
)
def test_every_device_argument_goes_through_the_parser(call):
    with pytest.raises(ValueError, match=r"^device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        call()


# --- precisions -----------------------------------------------------------------------------


def test_precisions_per_engine():
    cpu, gpu = Device("cpu"), Device("cuda", 1)
    assert [parse_precision(p) for p in PRECISIONS] == list(PRECISIONS)
    assert [parse_precision(p, cpu) for p in CPU_PRECISIONS] == ["fp32", "bf16"]
    assert [parse_precision(p, gpu) for p in GPU_PRECISIONS] == ["fp32", "fp16"]
    with pytest.raises(ValueError, match=r"^precision: expected one of .* on cpu .*got 'fp16'"):
        parse_precision("fp16", cpu)
    with pytest.raises(ValueError, match=r"on cuda:1 \(the CPU engine runs fp32, bf16, the GPU"):
        parse_precision("bf16", gpu)


@pytest.mark.parametrize("bad", ["int8", "FP32", "fp32 ", "", None, 32])
def test_a_bad_precision_is_a_value_error_naming_the_argument(bad):
    with pytest.raises(
        ValueError, match=r"^--precision: expected one of \('fp32', 'bf16', 'fp16'\)"
    ):
        parse_precision(bad, name="--precision")


# --- the option structs of the core ---------------------------------------------------------


def test_continuum_options_match_the_python_defaults():
    py = preprocess_module.ContinuumOptions()
    core = _core.ContinuumOptions()
    for f in dataclasses.fields(py):
        assert getattr(core, f.name) == getattr(py, f.name), f.name
    assert isinstance(core.grow, int) and isinstance(core.knot_spacing, float)


def test_preprocess_options_match_preprocess_defaults():
    o = _core.PreprocessOptions()
    sig = inspect.signature(preprocess_module.preprocess).parameters
    assert o.normalise is (not sig["normalised"].default)
    assert o.min_pixel_good == sig["min_pixel_good"].default
    assert o.min_arm_good == sig["min_arm_good"].default
    assert repr(o.continuum) == repr(_core.ContinuumOptions())
    built = preprocess_module.core_options()
    assert repr(built) == repr(o)
    assert "PreprocessOptions(normalise=False, min_pixel_good=0.5" in repr(o)


def test_simulate_options_match_simulate_and_realism_defaults():
    o = _core.SimulateOptions()
    sig = inspect.signature(simulate_module.simulate).parameters
    expect = {
        "seed": sig["seed"].default,
        "absorber_fraction": sig["with_absorber_fraction"].default,
        "max_absorbers": sig["max_absorbers"].default,
        "ew_min": sig["ew_range"].default[0],
        "ew_max": sig["ew_range"].default[1],
        "edge_margin": sig["edge_margin"].default,
        "edge_snr_ratio": sig["edge_snr_ratio"].default,
        "edge_taper_pixels": sig["edge_taper_pixels"].default,
        "noise": sig["noise"].default,
        "z_em_min": sig["z_em_range"].default[0],
        "z_em_max": sig["z_em_range"].default[1],
        "kinematics": simulate_module.KINEMATICS.index(sig["kinematics"].default),
        "blend_fraction": sig["blend_fraction"].default,
    }
    r = simulate_module.Realism()
    for f in dataclasses.fields(r):
        if f.name == "resolution_range":
            expect["resolution_min"], expect["resolution_max"] = r.resolution_range
        else:
            expect[f.name] = getattr(r, f.name)
    for name, value in expect.items():
        assert getattr(o, name) == value, name


def test_ew_options_match_the_python_defaults():
    py, core = ew_module.EWOptions(), _core.EwOptions()
    for name in ("half_factor", "half_min", "half_max", "side", "min_coverage", "floor"):
        assert getattr(core, name) == getattr(py, name), name


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _core.ContinuumOptions(knot_spacing=3.0), "^knot_spacing: must be at least"),
        (lambda: _core.ContinuumOptions(knot_spacing=float("nan")), "^knot_spacing: "),
        (lambda: _core.ContinuumOptions(max_iter=0), "^max_iter: must be at least 1"),
        (lambda: _core.ContinuumOptions(spike_sigma=-1.0), "^spike_sigma: must be finite"),
        (lambda: _core.PreprocessOptions(min_pixel_good=0.0), r"^min_pixel_good: .*\(0, 1\]"),
        (lambda: _core.PreprocessOptions(min_arm_good=1.5), r"^min_arm_good: .*\(0, 1\]"),
        (lambda: _core.SimulateOptions(max_absorbers=9), r"^max_absorbers: must lie in \[1, "),
        (lambda: _core.SimulateOptions(ew_min=2.0, ew_max=1.0), "^ew_range: "),
        (lambda: _core.SimulateOptions(kinematics=2), "^kinematics: must be 'paper' or 'sky'"),
        (lambda: _core.SimulateOptions(edge_margin=5.0), r"^edge_margin: must lie in \[10, 100\]"),
        (lambda: _core.SimulateOptions(dla_rate=9.0), r"^dla_rate: must lie in \[0, 4\]"),
        (lambda: _core.EwOptions(half_min=5.0), "^EW options: need 0 < half_min <= half_max"),
        (lambda: _core.EwOptions(min_coverage=0.0), "^EW options: need side > 0"),
    ],
)
def test_bad_values_are_value_errors_naming_the_field(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: _core.ContinuumOptions(40.0),  # keyword-only
        lambda: _core.ContinuumOptions(knot_spacing="wide"),
        lambda: _core.ContinuumOptions(knots=40.0),  # no such field
        lambda: _core.PreprocessOptions(continuum={"knot_spacing": 40.0}),
        lambda: _core.SimulateOptions(seed=-1),  # uint64
        lambda: _core.SimulateOptions(max_absorbers=1.5),
        lambda: _core.EwOptions(floor=None),
    ],
)
def test_wrong_types_and_names_are_type_errors(make):
    with pytest.raises(TypeError):
        make()


def test_fields_are_typed_on_assignment():
    o = _core.SimulateOptions()
    o.max_absorbers = 3
    assert o.max_absorbers == 3
    with pytest.raises(TypeError):
        o.max_absorbers = "three"
    with pytest.raises(AttributeError):
        o.max_absorber = 3  # a typo is not a new attribute


def test_fields_assigned_later_are_checked_by_the_call():
    f = np.ones((1, grid.N_PIX), np.float32)
    o = _core.PreprocessOptions()
    o.continuum.knot_spacing = 2.0  # the nested struct is the one the options hold
    assert o.continuum.knot_spacing == 2.0
    with pytest.raises(ValueError, match=r"^knot_spacing: "):
        _core.preprocess(f, None, None, None, None, None, False, 0, o, False, "cpu", 1)
    s = _core.SimulateOptions()
    s.bal_fraction = 2.0
    with pytest.raises(ValueError, match=r"^bal_fraction: must lie in \[0, 1\]"):
        _core.simulate(1, 0, np.array([10.0]), s, False, "cpu", 1)
    e = _core.EwOptions()
    e.half_max = 1.0
    one = np.zeros(1)
    with pytest.raises(ValueError, match=r"^EW options: "):
        _core.measure_ew(f, f, np.zeros(1, np.int64), one, one, e, 1)


def test_the_wrappers_refuse_what_the_structs_refuse():
    with pytest.raises(ValueError, match=r"^dla_rate: must lie in \[0, 4\]"):
        simulate_module.simulate(3, realism=simulate_module.Realism(dla_rate=9.0))
    with pytest.raises(ValueError, match=r"^knot_spacing: "):
        preprocess_module.preprocess(
            np.ones(grid.N_PIX),
            normalised=False,
            continuum=preprocess_module.ContinuumOptions(knot_spacing=2.0),
        )


def test_the_wrappers_give_what_the_structs_give():
    # simulate() is _core.simulate with the struct built from its keywords
    kw = dict(seed=11, start=4, max_absorbers=2, kinematics="sky", blend_fraction=0.5)
    sim = simulate_module.simulate(5, snr=(7.0,), realism=simulate_module.Realism.sky(), **kw)
    o = _core.SimulateOptions(seed=11, max_absorbers=2, kinematics=1, blend_fraction=0.5)
    simulate_module.Realism.sky()._set_core_fields(o)
    raw, truth = _core.simulate(5, 4, np.array([7.0]), o, False, "cpu", 0)
    assert np.array_equal(sim.flux, raw["flux"]) and np.array_equal(sim.err, raw["err"])
    assert np.array_equal(sim.truth.abs_z, truth["abs_z"], equal_nan=True)
    # and a changed field changes the spectra (the struct is read, not ignored)
    o.ew_min = o.ew_max = 3.0
    again, _ = _core.simulate(5, 4, np.array([7.0]), o, False, "cpu", 0)
    assert not np.array_equal(again["flux"], raw["flux"])


def test_matched_filter_options_are_a_checked_struct_with_the_python_defaults():
    from mgfast import matched_filter as mf

    o = _core.MatchedFilterOptions()
    assert tuple(o.widths) == mf.DEFAULT_WIDTHS and o.top_k == mf.DEFAULT_TOP_K
    assert (o.ratio_lo, o.ratio_hi, o.ratio_sigma) == (0.8, 2.2, 2.0)
    with pytest.raises(TypeError):
        _core.MatchedFilterOptions([1.0])  # keyword-only
    with pytest.raises(ValueError, match="top_k"):
        _core.MatchedFilterOptions(top_k=0)
    with pytest.raises(ValueError, match="ratio_range"):
        _core.MatchedFilterOptions(ratio_lo=2.0, ratio_hi=1.0)
    with pytest.raises(ValueError, match="widths"):
        _core.MatchedFilterOptions(widths=[])

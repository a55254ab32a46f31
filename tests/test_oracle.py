"""The judge's own foundations: the float64 oracles are right, and the wire only carries plain data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.check import wire
from tests.check.kit import (
    NO_FIX,
    NUMPY_FIXES,
    Fail,
    MistakeKey,
    expect_close,
    forward_mistakes,
    gradient_mistakes,
    layernorm,
    layernorm_grads,
    random_case,
)

shapes = st.tuples(st.integers(1, 4), st.integers(2, 6), st.integers(2, 5))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), n_axes=st.integers(1, 2))
def test_oracle_normalises_trailing_axes(shape, seed, n_axes):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * rng.uniform(0.1, 100) + rng.uniform(-1000, 1000)
    axes = tuple(range(-n_axes, 0))
    y = layernorm(x, 1.0, 0.0, 0.0, axes=axes)
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-9)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), n_axes=st.integers(1, 2), eps=st.sampled_from([0.0, 1e-5, 0.5]))
def test_oracle_gradients_match_finite_differences(shape, seed, n_axes, eps):
    rng = np.random.default_rng(seed)
    axes = tuple(range(-n_axes, 0))
    x = rng.normal(size=shape)
    gamma, beta = rng.normal(size=shape[-n_axes:]), rng.normal(size=shape[-n_axes:])
    dy = rng.normal(size=shape)
    dx, dgamma, dbeta = layernorm_grads(x, gamma, eps, dy, axes=axes)

    def loss(x_, gamma_, beta_):
        return float(np.sum(layernorm(x_, gamma_, beta_, eps, axes=axes) * dy))

    h = 1e-6
    arrays = [x, gamma, beta]
    for slot, analytic in enumerate((dx, dgamma, dbeta)):
        numeric = np.zeros_like(analytic)
        for index in np.ndindex(analytic.shape):
            plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
            plus[slot][index] += h
            minus[slot][index] -= h
            numeric[index] = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(analytic, numeric, atol=1e-5, rtol=1e-5)


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(value=plain)
def test_plain_data_crosses_the_wire_unchanged(value):
    assert wire.loads_plain(pickle.dumps(wire.to_plain(value))) == value


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int64", "bool"])
def test_arrays_cross_the_wire_with_their_dtype(dtype):
    array = np.arange(6).reshape(2, 3).astype(dtype)
    back = wire.loads_plain(pickle.dumps(wire.to_plain(array), protocol=pickle.HIGHEST_PROTOCOL))
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_objects_become_named_markers_and_forbidden_pickles_are_refused():
    class Tensorish:
        pass

    marker = wire.to_plain([Tensorish(), np.array([object()])])
    assert all(isinstance(m, wire.Foreign) for m in marker)
    assert "Tensorish" in marker[0].type_name
    with pytest.raises(pickle.UnpicklingError):
        wire.loads_plain(pickle.dumps(print))


@pytest.mark.parametrize(
    "dtype, used_eps, named",
    [
        ("float64", 1e-6, "the one for eps=1e-6"),  # float64 tells a copied constant from no eps at all
        ("float64", 0.0, "eps is not added"),
        ("float32", 0.0, "eps is not added"),  # in float32, 1e-6 or 1e-8 would be indistinguishable from none
        ("float32", 1e-3, "the one for eps=0.001"),
    ],
)
def test_a_wrong_eps_is_named_with_the_constant_used_where_the_dtype_can_tell(dtype, used_eps, named):
    x, gamma, beta = random_case(3, (6, 40), dtype=dtype)
    wrong = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + used_eps) * gamma + beta
    with pytest.raises(Fail, match=named):
        expect_close(
            wrong.astype(dtype),
            layernorm(x, gamma, beta, 10.0),
            name="y",
            dtype=dtype,
            mistakes=forward_mistakes(x, gamma, beta, 10.0, NUMPY_FIXES),
        )


def test_a_steps_fixes_are_typed_keys_each_with_a_fix_or_no_fix():
    """A fix ends the catalogue's hint; NO_FIX leaves the hint bare. A string key (the catalogue's old spelling), a
    key the catalogue lacks, or an empty fix is the checklist's mistake: refused, not silently left out."""
    x, gamma, beta = random_case(1, (4, 6))
    fixed, bare = (
        forward_mistakes(x, gamma, beta, 1e-5, {MistakeKey.SWAPPED: fix})[0].hint for fix in ("swap them", NO_FIX)
    )
    assert fixed == "gamma and beta are swapped: gamma scales, beta shifts: swap them"
    assert bare == "gamma and beta are swapped: gamma scales, beta shifts"
    for fixes in ({"swapped": "swap them"}, {MistakeKey.SWAPPED: ""}, {MistakeKey.NO_MEAN_PATH: "subtract it"}):
        with pytest.raises(ValueError, match="fixes"):
            forward_mistakes(x, gamma, beta, 1e-5, fixes)
    with pytest.raises(ValueError, match="fixes"):
        gradient_mistakes(x, gamma, 1e-5, x, {MistakeKey.NO_AFFINE: "apply them"})

"""The model family's reference (kernel.reference.train_reference): one step of every variant
equals the formulas of docs/numerics.md, computed independently by finite differences of the
loss with plain NumPy functions; the notebook's model keeps its bytes."""

import itertools

import numpy as np
import pytest

from runner.kernel import reference as R

N, D, HID, O = 6, 3, 4, 2
ALPHA_H, ALPHA_O = 0.013, 0.021
FD = 1e-5

ACT = {
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "identity": lambda a: a,
}


def ones(M, bias):
    return np.hstack([M, np.ones((M.shape[0], 1))]) if bias else M


def forward_p(X, Wh, Wz, act, bias, c_h, c_o):
    return c_o * (ones(ACT[act](c_h * (ones(X, bias) @ Wh)), bias) @ Wz)


def loss_of_p(P, Y, output):
    Z = P if output == "linear" else 1 / (1 + np.exp(-P))
    return np.mean((Y - Z) ** 2)


def fd_grad(f, W):
    g = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        up, down = W.copy(), W.copy()
        up[idx] += FD
        down[idx] -= FD
        g[idx] = (f(up) - f(down)) / (2 * FD)
    return g


VARIANTS = list(itertools.product(
    R.ACTIVATIONS, ("linear", "sigmoid"), (False, True), ("standard", "mean-field"),
    ("notebook", "gradient"), ("sequential", "simultaneous"),
))  # fmt: skip


@pytest.mark.parametrize(("act", "output", "bias", "scaling", "step", "update"), VARIANTS)
def test_one_step_equals_the_independent_gradient(act, output, bias, scaling, step, update):
    rng = np.random.default_rng(11)
    X, Y = rng.standard_normal((N, D)), rng.standard_normal((N, O))
    Wh = rng.normal(0, 0.7, (D + bias, HID))
    Wz = rng.normal(0, 0.7, (HID + bias, O))
    got = R.train_reference(
        X, Y, Wh, Wz, 0.5, 1, output, update, activation=act, bias=bias, scaling=scaling,
        step=step, alpha_hidden=ALPHA_H, alpha_output=ALPHA_O,
    )  # fmt: skip
    c_h, c_o = (1.0, 1.0) if scaling == "standard" else (
        (np.sqrt(2) if act in ("tanh", "relu") else 1.0) / np.sqrt(D), 1 / HID)  # fmt: skip
    per = 1.0 if step == "gradient" else N * O / 2  # the notebook's step: no/2 gradients

    def loss(wh, wz):
        return loss_of_p(forward_p(X, wh, wz, act, bias, c_h, c_o), Y, output)

    Wz_new = Wz - ALPHA_O * per * fd_grad(lambda w: loss(Wh, w), Wz)
    if update == "simultaneous":
        Wh_new = Wh - ALPHA_H * per * fd_grad(lambda w: loss(w, Wz), Wh)
    else:  # the hidden step backpropagates through the new Wz: the gradient of <G, P(Wh, Wz_new)>
        P0 = forward_p(X, Wh, Wz, act, bias, c_h, c_o)
        G = fd_grad(lambda p: loss_of_p(p, Y, output), P0)
        Wh_new = Wh - ALPHA_H * per * fd_grad(
            lambda w: np.sum(G * forward_p(X, w, Wz_new, act, bias, c_h, c_o)), Wh
        )
    assert got.loss[0] == pytest.approx(loss(Wh, Wz), abs=1e-14)
    np.testing.assert_allclose(got.Wz, Wz_new, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.Wh, Wh_new, rtol=0, atol=1e-10)
    assert not np.array_equal(got.Wh, Wh) and not np.array_equal(got.Wz, Wz)


def test_the_notebook_model_keeps_its_bytes():
    """The defaults, spelled out, give the same bits as the call without them."""
    X, Y = np.array([[1, 1], [1, 2], [2, 1], [2, 2]], float), np.array([[0], [1], [2], [3]], float)
    for output, update in itertools.product(("linear", "sigmoid"), ("sequential", "simultaneous")):
        Wh, Wz = R.init_weights(3, 2, 4, 1)
        plain = R.train_reference(X, Y, Wh, Wz, 0.1, 500, output, update)
        spelled = R.train_reference(
            X, Y, Wh, Wz, 0.1, 500, output, update, activation="sigmoid", bias=False,
            scaling="standard", step="notebook", alpha_hidden=0.1, alpha_output=0.1,
        )  # fmt: skip
        assert plain.loss.tobytes() == spelled.loss.tobytes()
        assert plain.Wh.tobytes() == spelled.Wh.tobytes()


def test_relu_keeps_nan_and_normal_init_draws_bias_rows():
    assert np.isnan(R.relu(np.array([np.nan]))[0]) and R.relu(np.array([-2.0]))[0] == 0.0
    Wh, Wz = R.init_normal(5, 3, 4, 2, 0.0, 1.0, bias=True)
    rng = np.random.default_rng(5)
    assert Wh.shape == (4, 4) and Wz.shape == (5, 2)
    assert np.array_equal(Wh, rng.normal(0.0, 1.0, (4, 4)))
    assert np.array_equal(Wz, rng.normal(0.0, 1.0, (5, 2)))
    X, Y = R.random_data(272, 16, 1, 0)
    rng = np.random.default_rng(0)
    assert np.array_equal(X, rng.standard_normal((272, 16)))
    assert np.array_equal(Y, rng.standard_normal((272, 1)))

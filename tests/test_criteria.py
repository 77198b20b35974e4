"""Each criterion against hand-computed numbers on tiny inputs and a tiny network.

The tiny network is ``out = w2 · relu(W1 x + b1)`` with ``x = [1, 2]``, target 0 and the
squared error: ``h = [1, 2, 0]``, ``out = 5``, ``dL/dout = 10``, so (by hand)
``g_W2 = [10, 20, 0]``, ``g_W1 = [[10, 20], [20, 40], [0, 0]]``, ``g_b1 = [10, 20, 0]``.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

import spa_core
from spa_core.criteria.base import ScoringContext, get_criterion
from spa_core.criteria.lamp import lamp_scores
from spa_core.errors import InvalidOptionError
from spa_core.gradients import Calibration
from spa_core.gradients.calibration import Batch
from spa_core.gradients.driver import compute_derivatives, hutchinson_diagonal
from spa_core.gradients.torch_provider import TorchModuleFunction

torch.set_num_threads(2)

W = np.array([[1.0, 2.0], [3.0, -1.0]])
CTX = ScoringContext(
    gradients={"w": np.array([[1.0, -1.0], [2.0, 2.0]])},
    hvp={"w": np.array([[1.0, -1.0], [2.0, 2.0]])},
    hessian_diagonal={"w": np.array([[2.0, -4.0], [1.0, 0.0]])},
)


def scores(name: str, weight: np.ndarray = W, axis: int = 0, ctx: ScoringContext = CTX) -> np.ndarray:
    return get_criterion(name).channel_scores("w", weight, axis, ctx)


# ------------------------------------------------------------------ formulas by hand
def test_snip_sums_abs_weight_times_gradient():
    # row 0: |1*1| + |2*-1| = 3; row 1: |3*2| + |-1*2| = 8
    np.testing.assert_allclose(scores("snip"), [3.0, 8.0])
    np.testing.assert_allclose(scores("snip", axis=1), [1 + 6, 2 + 2])


def test_taylor_is_abs_of_the_slice_dot_product_averaged_over_batches():
    # one gradient: row 0: |1 - 2| = 1; row 1: |6 - 2| = 4
    np.testing.assert_allclose(scores("taylor"), [1.0, 4.0])
    ctx = ScoringContext(gradients=CTX.gradients, gradient_batches=[
        {"w": np.array([[1.0, 0.0], [0.0, 1.0]])},   # rows: |1| = 1, |-1| = 1
        {"w": np.array([[0.0, -1.0], [1.0, 0.0]])},  # rows: |-2| = 2, |3| = 3
    ])
    np.testing.assert_allclose(scores("taylor", ctx=ctx), [1.5, 2.0])


def test_hessian_is_optimal_brain_damage():
    # row 0: ½(|2|·1 + |-4|·4) = 9; row 1: ½(1·9 + 0) = 4.5
    np.testing.assert_allclose(scores("hessian"), [9.0, 4.5])


def test_grasp_keeps_large_theta_hg_shifted_to_non_negative():
    # Σ θ⊙Hg: row 0: 1 - 2 = -1; row 1: 6 - 2 = 4; shifted by the minimum: [0, 5]
    np.testing.assert_allclose(scores("grasp"), [0.0, 5.0])


def test_crop_sums_abs_theta_hg():
    np.testing.assert_allclose(scores("crop"), [3.0, 8.0])


def test_lamp_divides_by_the_energy_of_larger_slices():
    energy = np.array([1.0, 9.0, 4.0, 0.25])  # sorted: .25, 1, 4, 9; tails 14.25, 14, 13, 9
    np.testing.assert_allclose(lamp_scores(energy), [1 / 14, 1.0, 4 / 13, 0.25 / 14.25])
    np.testing.assert_allclose(scores("lamp", np.array([[1.0], [3.0], [2.0], [0.5]])), lamp_scores(energy))


def test_fpgm_sums_distances_to_the_other_slices():
    # slices [0,0], [3,4], [6,8]: d01 = 5, d02 = 10, d12 = 5
    np.testing.assert_allclose(scores("fpgm", np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])), [15.0, 10.0, 15.0])


def test_derivatives_pair_with_the_native_weight_when_the_export_folded_it():
    ctx = ScoringContext(gradients=CTX.gradients, weights={"w": W / 2})
    np.testing.assert_allclose(scores("snip", W * 7, ctx=ctx), [1.5, 4.0])


def test_missing_derivatives_are_an_error_naming_the_fix_and_unknown_names_score_zero():
    with pytest.raises(InvalidOptionError, match="pass calibration data"):
        scores("snip", ctx=ScoringContext())
    np.testing.assert_allclose(
        get_criterion("crop").channel_scores("other", W, 0, CTX), [0.0, 0.0]
    )


def test_needs_say_which_criteria_ask_for_data():
    data_driven = {n for n in ("taylor", "snip", "grasp", "crop", "hessian") if get_criterion(n).needs_data}
    free = {n for n in ("l1", "l2", "random", "lamp", "fpgm", "bn_scale") if not get_criterion(n).needs_data}
    assert len(data_driven) == 5 and len(free) == 6


# ------------------------------------------------------------------ the tiny network
class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[2.0, -0.5], [0.0, 1.0], [1.0, -1.0]]))
            self.fc1.bias.zero_()
            self.fc2.weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


X = np.array([[1.0, 2.0]], np.float32)
T = np.array([[0.0]], np.float32)
DATA = [(X, T)]
# by hand, per hidden channel, summed over fc1.weight row, fc1.bias, fc2.weight column:
# snip:   c0 = |2·10| + |-0.5·20| + 0 + |1·10| = 40;  c1 = 0 + |1·40| + 0 + |2·20| = 80;  c2 = 0
# taylor: c0 = |20 - 10| + 0 + 10 = 20;               c1 = 80;                         c2 = 0
HAND = {"snip": [40.0, 80.0, 0.0], "taylor": [20.0, 80.0, 0.0]}
RAW = {"reduce": "sum", "normalize": "none"}


def group_scores(result: spa_core.PruneResult) -> list[float]:
    (group,) = result.plan.groups
    return group.scores


@pytest.mark.parametrize("criterion", sorted(HAND))
def test_tiny_torch_network_scores_by_hand(criterion: str):
    result = spa_core.prune(Tiny(), torch.from_numpy(X), ratio=0.34, criterion=criterion, data=DATA, loss="mse", **RAW)
    np.testing.assert_allclose(group_scores(result), HAND[criterion], atol=1e-4)
    assert result.plan.groups[0].kept == [0, 1]
    assert result.model.fc1.out_features == 2


def test_params_normalisation_divides_by_the_parameters_each_channel_carries():
    # a channel of fc1 carries its 2 weights, its bias and its fc2 weight: 4 parameters
    result = spa_core.prune(Tiny(), torch.from_numpy(X), ratio=0.34, criterion="snip", data=DATA, loss="mse",
                            reduce="sum", normalize="params")
    np.testing.assert_allclose(group_scores(result), [40.0 / 4, 80.0 / 4, 0.0], atol=1e-4)


def tiny_onnx() -> onnx.ModelProto:
    from onnx_builders import make_model

    m = Tiny()
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2"], ["y"], transB=1),
    ]
    inits = {"W1": m.fc1.weight.detach().numpy(), "b1": m.fc1.bias.detach().numpy(), "W2": m.fc2.weight.detach().numpy()}
    return make_model(nodes, {"x": (1, 2)}, ["y"], inits)


@pytest.mark.parametrize("criterion", sorted(HAND))
def test_tiny_onnx_network_scores_by_hand(criterion: str):
    result = spa_core.prune_onnx(tiny_onnx(), ratio=0.34, criterion=criterion, data=DATA, loss="mse", **RAW)
    np.testing.assert_allclose(group_scores(result), HAND[criterion], atol=1e-4)


def test_second_order_products_match_the_exact_hessian():
    fn = TorchModuleFunction(Tiny(), "mse")
    batch = Batch((X,), T)
    names = list(fn.parameters())
    shapes = [fn.parameters()[n].shape for n in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(names, (p.reshape(s) for p, s in zip(torch.split(flat, sizes), shapes))))
        return fn.batch_loss(parts, batch)

    flat = torch.cat([fn.parameters()[n].detach().reshape(-1) for n in names])
    H = torch.autograd.functional.hessian(loss, flat).numpy()
    d = compute_derivatives(fn, {"hessian_vector_products"}, [batch], np.random.default_rng(0))
    g = np.concatenate([d.gradients[n].reshape(-1) for n in names])
    np.testing.assert_allclose(g[:6], [10, 20, 20, 40, 0, 0])  # fc1.weight, by hand
    hg = np.concatenate([d.hvp[n].reshape(-1) for n in names])
    np.testing.assert_allclose(hg, H @ g, rtol=1e-5, atol=1e-4)


class MatrixFunction:
    """A fake Differentiable whose Hessian is a fixed matrix (for Hutchinson's estimator)."""

    def __init__(self, H: np.ndarray) -> None:
        self.H = H

    def parameter_values(self) -> dict[str, np.ndarray]:
        return {"p": np.zeros(len(self.H), np.float32)}

    def hvp(self, batch: Batch, vector: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"p": self.H @ vector["p"]}


def test_hutchinson_is_exact_for_a_diagonal_hessian_and_unbiased_otherwise():
    batch = [Batch((np.zeros((1, 1)),))]
    rng = np.random.default_rng(0)
    exact = hutchinson_diagonal(MatrixFunction(np.diag([2.0, -3.0, 5.0])), batch, rng, 1)["p"]
    np.testing.assert_allclose(exact, [2.0, -3.0, 5.0])
    H = np.array([[2.0, 1.0, 0.5], [1.0, -3.0, 0.2], [0.5, 0.2, 5.0]])
    estimate = hutchinson_diagonal(MatrixFunction(H), batch, rng, 4000)["p"]
    np.testing.assert_allclose(estimate, np.diag(H), atol=0.1)


def test_bn_scale_ranks_a_group_by_its_batchnorm_scales_only():
    from onnx_builders import conv_sandwich

    gamma = np.array([0.5, -2.0, 0.1, 1.0], np.float32)
    bn = helper.make_node("BatchNormalization", ["a", "g", "beta", "mu", "var"], ["b"])
    inits = {"g": gamma, "beta": np.zeros(4, np.float32), "mu": np.zeros(4, np.float32), "var": np.ones(4, np.float32)}
    model = conv_sandwich([bn], 4, inits, c=4)
    result = spa_core.prune_onnx(model, ratio=0.5, criterion="bn_scale", **RAW)
    np.testing.assert_allclose(group_scores(result), np.abs(gamma), atol=1e-6)
    assert result.plan.groups[0].kept == [1, 3]


def test_data_free_criteria_never_read_the_data():
    class Untouchable:
        def __iter__(self):
            raise AssertionError("a data-free criterion read the calibration data")

    for name in ("l1", "lamp", "fpgm", "bn_scale", "random"):
        spa_core.prune_onnx(tiny_onnx(), ratio=0.34, criterion=name, data=Untouchable())


def test_data_driven_criterion_without_data_says_what_to_pass():
    with pytest.raises(InvalidOptionError, match="needs calibration data"):
        spa_core.prune_onnx(tiny_onnx(), ratio=0.34, criterion="snip")
    with pytest.raises(InvalidOptionError, match="unknown loss"):
        spa_core.prune_onnx(tiny_onnx(), ratio=0.34, criterion="snip", data=DATA, loss="hinge")
    with pytest.raises(InvalidOptionError, match=r"\(inputs, targets\)"):
        spa_core.prune_onnx(tiny_onnx(), ratio=0.34, criterion="snip", data=[(X, T, T)])


def test_calibration_limits_batches_and_accepts_bare_arrays():
    cal = Calibration([(X, T)] * 5, "mse", max_batches=2)
    assert len(cal.batches()) == 2
    assert Calibration([X]).batches()[0].targets is None


# ------------------------------------------------------------------ the same network in Keras and Flax
def test_tiny_keras_network_scores_by_hand():
    keras = pytest.importorskip("keras")
    pytest.importorskip("tf2onnx")
    t = Tiny()
    inp = keras.Input((2,))
    h = keras.layers.Dense(3, activation="relu", name="fc1")(inp)
    out = keras.layers.Dense(1, use_bias=False, name="fc2")(h)
    model = keras.Model(inp, out)
    model.get_layer("fc1").set_weights([t.fc1.weight.detach().numpy().T, np.zeros(3, np.float32)])
    model.get_layer("fc2").set_weights([t.fc2.weight.detach().numpy().T])
    result = spa_core.prune(model, X, ratio=0.34, criterion="snip", data=DATA, loss="mse", **RAW)
    np.testing.assert_allclose(group_scores(result), HAND["snip"], atol=1e-4)


def test_tiny_flax_network_scores_by_hand():
    pytest.importorskip("flax")
    pytest.importorskip("jax2onnx")
    import jax.numpy as jnp
    from flax import linen

    class TinyLinen(linen.Module):
        @linen.compact
        def __call__(self, x):
            h = linen.relu(linen.Dense(3, name="fc1")(x))
            return linen.Dense(1, use_bias=False, name="fc2")(h)

    t = Tiny()
    variables = {"params": {
        "fc1": {"kernel": jnp.asarray(t.fc1.weight.detach().numpy().T), "bias": jnp.zeros(3)},
        "fc2": {"kernel": jnp.asarray(t.fc2.weight.detach().numpy().T)},
    }}
    result = spa_core.prune((TinyLinen(), variables), X, ratio=0.34, criterion="taylor", data=DATA, loss="mse", **RAW)
    np.testing.assert_allclose(group_scores(result), HAND["taylor"], atol=1e-4)


# ------------------------------------------------------------------ batch statistics (pruning at init)
def _bn_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():  # running statistics far from any batch's
        net[1].running_mean.fill_(5.0)
        net[1].running_var.fill_(9.0)
    return net.eval()


BN_X = np.random.default_rng(1).standard_normal((6, 1, 6, 6)).astype(np.float32)
BN_Y = np.array([0, 1, 2, 0, 1, 2])


def _train_mode_gradients(net: torch.nn.Module) -> dict[str, np.ndarray]:
    """Reference: plain autograd with the BatchNorm in training mode, on a copy."""
    import copy

    ref = copy.deepcopy(net).train()
    torch.nn.functional.cross_entropy(ref(torch.from_numpy(BN_X)), torch.from_numpy(BN_Y)).backward()
    return {n: p.grad.numpy() for n, p in ref.named_parameters()}


def test_torch_batch_statistics_are_training_mode_and_leave_the_model_alone():
    net = _bn_net()
    stats = net[1].running_mean.clone(), net[1].running_var.clone()
    fn = TorchModuleFunction(net, "cross_entropy")
    eval_grads = fn.gradient(Batch((BN_X,), BN_Y))
    fn.use_batch_statistics()
    grads = fn.gradient(Batch((BN_X,), BN_Y))
    want = _train_mode_gradients(net)
    for name in want:
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-4, atol=1e-6)
    assert not np.allclose(eval_grads["0.weight"], grads["0.weight"], atol=1e-4)
    assert torch.equal(net[1].running_mean, stats[0]) and torch.equal(net[1].running_var, stats[1])
    assert not net.training


def test_onnx_executor_batch_statistics_match_torch_training_mode():
    from zoo import export

    from spa_core.gradients.onnx_provider import OnnxFunction

    net = _bn_net()
    fn = OnnxFunction(export(net, torch.from_numpy(BN_X[:1])), "cross_entropy")
    fn.use_batch_statistics()
    with torch.no_grad():
        got = fn.forward(fn.parameters(), (torch.from_numpy(BN_X),))
        want = _bn_net().train()(torch.from_numpy(BN_X))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_prune_at_init_scores_with_batch_statistics_on_torch_and_onnx():
    from zoo import export

    from spa_core.workflows import prune_at_init

    data = [(BN_X, BN_Y)]
    for model in (_bn_net(), export(_bn_net(), torch.from_numpy(BN_X[:1]))):
        on = prune_at_init(model, torch.from_numpy(BN_X[:1]), data=data, criterion="snip", target=0.5, **RAW)
        off = prune_at_init(model, torch.from_numpy(BN_X[:1]), data=data, criterion="snip", target=0.5,
                            batch_statistics=False, **RAW)
        assert not np.allclose(group_scores(on), group_scores(off))


def test_flax_batch_statistics_are_training_mode_and_leave_the_model_alone():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import optax
    from flax import linen, nnx

    from spa_core.gradients.flax_provider import FlaxFunction

    x = np.ascontiguousarray(BN_X.transpose(0, 2, 3, 1))
    batch = Batch((x,), BN_Y)

    def loss(logits):
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(BN_Y)).mean()

    class Nnx(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
            self.bn = nnx.BatchNorm(4, rngs=rngs)
            self.fc = nnx.Linear(4, 3, rngs=rngs)

        def __call__(self, h):
            return self.fc(jax.nn.relu(self.bn(self.conv(h))).mean((1, 2)))

    model = Nnx(nnx.Rngs(0))
    model.bn.mean.set_value(jnp.full(4, 5.0))
    fn = FlaxFunction(model, "cross_entropy")
    eval_grads = fn.gradient(batch)
    fn.use_batch_statistics()
    grads = fn.gradient(batch)
    reference = nnx.clone(model)
    reference.train()
    want = nnx.grad(lambda m: loss(m(jnp.asarray(x))))(reference)
    np.testing.assert_allclose(grads["conv/kernel"], np.asarray(want["conv"]["kernel"].get_value()), rtol=1e-4, atol=1e-6)
    assert not np.allclose(eval_grads["conv/kernel"], grads["conv/kernel"], atol=1e-4)
    np.testing.assert_array_equal(np.asarray(model.bn.mean.get_value()), 5.0)

    class LinenFlagInConstructor(linen.Module):
        @linen.compact
        def __call__(self, h, train: bool = False):
            h = linen.BatchNorm(use_running_average=not train)(linen.Conv(4, (3, 3))(h))
            return linen.Dense(3)(jax.nn.relu(h).mean((1, 2)))

    class LinenFlagInCall(linen.Module):
        @linen.compact
        def __call__(self, h, train: bool = False):
            h = linen.BatchNorm()(linen.Conv(4, (3, 3))(h), not train)
            return linen.Dense(3)(jax.nn.relu(h).mean((1, 2)))

    for module in (LinenFlagInConstructor(), LinenFlagInCall()):
        variables = module.init(jax.random.PRNGKey(0), jnp.asarray(x))
        fn = FlaxFunction((module, variables), "cross_entropy")
        eval_grads = fn.gradient(batch)
        fn.use_batch_statistics()
        grads = fn.gradient(batch)

        def train_loss(params, module=module, variables=variables):
            out, _ = module.apply({**variables, "params": params}, jnp.asarray(x), train=True, mutable=["batch_stats"])
            return loss(out)

        want = jax.grad(train_loss)(variables["params"])
        got = grads["params/Conv_0/kernel"]
        np.testing.assert_allclose(got, np.asarray(want["Conv_0"]["kernel"]), rtol=1e-4, atol=1e-6)
        assert not np.allclose(eval_grads["params/Conv_0/kernel"], got, atol=1e-4)


def test_keras_batch_statistics_restore_the_moving_statistics():
    keras = pytest.importorskip("keras")
    from spa_core.gradients.keras_provider import KerasFunction

    inp = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(4, 3, name="conv")(inp)
    h = keras.layers.BatchNormalization(name="bn", moving_mean_initializer=keras.initializers.Constant(5.0),
                                        moving_variance_initializer=keras.initializers.Constant(9.0))(h)
    out = keras.layers.Dense(3, name="fc")(keras.layers.Flatten()(keras.layers.ReLU()(h)))
    model = keras.Model(inp, out)
    x = np.ascontiguousarray(BN_X.transpose(0, 2, 3, 1))
    fn = KerasFunction(model, "cross_entropy")
    eval_grads = fn.gradient(Batch((x,), BN_Y))
    fn.use_batch_statistics()
    grads = fn.gradient(Batch((x,), BN_Y))
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), 5.0)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 9.0)
    assert not np.allclose(eval_grads["conv/kernel"], grads["conv/kernel"], atol=1e-4)

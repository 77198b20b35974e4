"""Random architectures: the oracle holds or the pruning refuses with a reason, never anything else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spa_core.fuzzing import check_network, random_network

FUZZ_GRAPHS = 200


@settings(max_examples=FUZZ_GRAPHS, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_random_networks_prune_exactly_or_refuse(seed):
    outcome = check_network(seed)
    assert outcome.status in ("ok", "refused"), f"seed {seed}: {outcome.status} {outcome.error:.3g} {outcome.reason}"
    if outcome.status == "refused":
        assert "barrier" in outcome.reason


def test_generator_is_deterministic_and_varied():
    a, b = random_network(42), random_network(42)
    assert a.SerializeToString() == b.SerializeToString()
    ops = set()
    for seed in range(60):
        ops |= {n.op_type for n in random_network(seed).graph.node}
    for op in ("Conv", "BatchNormalization", "Concat", "Split", "Slice", "Reshape", "Transpose", "MatMul", "Gemm",
               "LayerNormalization", "Resize", "Softmax", "Add", "Mul"):
        assert op in ops, op

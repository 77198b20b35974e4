"""Make a pruned model's ``transformers`` config describe its weights.

SPA prunes whole attention heads (whole key/value groups under grouped-query attention)
and MLP hidden units. When every layer keeps the same numbers, most configs can say so
(``num_attention_heads``, ``num_key_value_heads``, ``head_dim``, ``intermediate_size``,
GPT-2's ``n_inner``, DistilBERT's ``hidden_dim``...). Some cannot: BERT, GPT-2 and
DistilBERT derive the head width from ``hidden_size / num_attention_heads``, so fewer
heads of the same width have no config; layers pruned unevenly (global ranking) have
none either. :func:`fit_config` tries candidate configs, keeps the one a freshly built
model agrees with best (checked by building it on the ``meta`` device and comparing every
parameter shape), and returns the shapes it still gets wrong as per-parameter overrides.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .hidden import embedding_width, rms_norms
from .modules import attention_layers, is_conv1d, out_width

# Names (suffixes) of the first projection of an MLP block, across model families.
MLP_INPUT_NAMES = (
    "mlp.up_proj", "mlp.gate_proj", "mlp.fc1", "mlp.c_fc", "mlp.fc_in", "mlp.dense_h_to_4h",
    "intermediate.dense", "ffn.lin1", "feed_forward.w1", "fc1",
)
# Fused MLP input projections and how many equal parts their output holds (Phi-3: gate, up).
FUSED_MLP_INPUTS = {"mlp.gate_up_proj": 2}
# Config fields that hold the MLP width, across model families.
MLP_WIDTH_FIELDS = ("intermediate_size", "n_inner", "hidden_dim", "ffn_dim", "mlp_dim")
OVERRIDES_KEY = "spa_pruning"


@dataclass
class ConfigFit:
    """A config for the pruned weights, and what it cannot express.

    Attributes:
        changes: config fields set to new values (``{"num_attention_heads": 2, ...}``).
        overrides: parameter name -> shape, for parameters the config builds wrong
            (empty when the config alone describes the model).
        notes: why overrides were needed, in words.
        epsilons: module name -> RMSNorm epsilon, for norms the config builds with
            another one (a pruned embedding width rescales the epsilon of the norms
            over it, not of per-head norms; see :mod:`.hidden`).
    """

    changes: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    epsilons: dict[str, float] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        """Whether ``from_pretrained`` rebuilds the model from the config alone."""
        return not self.overrides and not self.epsilons


def mlp_widths(model: nn.Module) -> dict[str, int]:
    """Hidden width of every MLP block (by the name of its input projection)."""
    widths = {}
    parts = {**dict.fromkeys(MLP_INPUT_NAMES, 1), **FUSED_MLP_INPUTS}
    for name, m in model.named_modules():
        if not (isinstance(m, nn.Linear) or is_conv1d(m)):
            continue
        for suffix, k in parts.items():
            if name == suffix or name.endswith("." + suffix):
                block = name.rsplit(".", 1)[0] if "." in name else name
                widths.setdefault(block, out_width(m) // k)
                break
    return widths


def _uniform(values: list[int]) -> int | None:
    return values[0] if values and all(v == values[0] for v in values) else None


def _has_field(config: Any, name: str) -> bool:
    return name in config.to_dict() or name in getattr(config, "attribute_map", {})


def candidate_changes(model: nn.Module, config: Any) -> list[tuple[str, dict[str, Any]]]:
    """Candidate config changes, most complete first (heads and MLP, MLP only, heads only).

    A pruned embedding width (and the RMSNorm epsilon that goes with it, see
    :mod:`.hidden`) is part of every candidate but the last, the unchanged config.
    """
    heads = list(attention_layers(model).values())
    head_changes: dict[str, Any] = {}
    q = _uniform([h.query for h in heads])
    kv = _uniform([h.key_value for h in heads])
    dim = _uniform([h.head_dim for h in heads])
    if q is not None and dim is not None and kv is not None:
        if (q, kv) != (config.num_attention_heads, getattr(config, "num_key_value_heads", q)):
            head_changes = {"num_attention_heads": q, "head_dim": dim}
            if _has_field(config, "num_key_value_heads"):
                head_changes["num_key_value_heads"] = kv
    mlp_changes: dict[str, Any] = {}
    width = _uniform(list(mlp_widths(model).values()))
    if width is not None:
        mlp_changes = {f: width for f in MLP_WIDTH_FIELDS if _has_field(config, f)}
    width = embedding_width(model)
    hidden_changes: dict[str, Any] = {}
    if width is not None and width != getattr(config, "hidden_size", width):
        hidden_changes = {"hidden_size": width}
        if dim is not None and _has_field(config, "head_dim"):  # else derived from the new width
            hidden_changes["head_dim"] = dim
        eps = {m.variance_epsilon for m in rms_norms(model).values() if m.weight.numel() == width}
        if len(eps) == 1 and _has_field(config, "rms_norm_eps"):
            hidden_changes["rms_norm_eps"] = eps.pop()
    out = [("heads and MLP", {**head_changes, **mlp_changes}), ("MLP", mlp_changes), ("heads", head_changes)]
    out = [(label, {**hidden_changes, **c}) for label, c in out]
    if hidden_changes:
        out.append(("embedding width", hidden_changes))
    return [(label, c) for label, c in out if c] + [("none", {})]


def _build(model: nn.Module, config: Any) -> nn.Module | None:
    """``model``'s class built from ``config`` on the ``meta`` device (``None`` if it cannot be)."""
    try:
        with torch.device("meta"):
            return type(model)(config)
    except Exception:
        return None


def epsilon_mismatches(model: nn.Module, config: Any) -> dict[str, float]:
    """RMSNorm epsilons of ``model`` that a model built from ``config`` would not have."""
    fresh = _build(model, config)
    if fresh is None:
        return {}
    built = {n: getattr(m, "variance_epsilon", None) for n, m in fresh.named_modules()}
    return {
        n: m.variance_epsilon for n, m in model.named_modules()
        if isinstance(getattr(m, "variance_epsilon", None), float) and built.get(n) != m.variance_epsilon
    }


def shape_mismatches(model: nn.Module, config: Any) -> dict[str, list[int]] | None:
    """Parameters whose shape in ``model`` differs from a model built from ``config``.

    ``None`` when ``config`` cannot even build the model class (an invalid head count).
    """
    fresh = _build(model, config)
    if fresh is None:
        return None
    fresh_shapes = {n: tuple(t.shape) for n, t in fresh.state_dict().items()}
    return {
        n: list(t.shape) for n, t in model.state_dict().items() if fresh_shapes.get(n) != tuple(t.shape)
    }


def _with_changes(config: Any, changes: dict[str, Any]) -> Any:
    new = copy.deepcopy(config)
    if hasattr(new, OVERRIDES_KEY):
        delattr(new, OVERRIDES_KEY)
    for k, v in changes.items():
        setattr(new, k, v)
    return new


def fit_config(model: nn.Module, config: Any) -> ConfigFit:
    """The candidate config that builds the most of ``model``'s parameter shapes right."""
    best: ConfigFit | None = None
    for label, changes in candidate_changes(model, config):
        wrong = shape_mismatches(model, _with_changes(config, changes))
        if wrong is None:
            continue
        changed = {k: v for k, v in changes.items() if getattr(config, k, None) != v}
        # fewest wrong shapes first, then fewest changed fields: a field that does not
        # remove a mismatch (a head count whose width the config derives) stays as it was
        if best is None or (len(wrong), len(changed)) < (len(best.overrides), len(best.changes)):
            best = ConfigFit(changed, wrong, [f"config changes: {label}"])
        if not wrong:
            break
    assert best is not None  # "none" always builds: it is the model's own config
    if best.overrides:
        best.notes += _why(model, config, best)
    best.epsilons = epsilon_mismatches(model, _with_changes(config, best.changes))
    if best.epsilons:
        best.notes.append(
            f"{len(best.epsilons)} RMSNorms keep an epsilon that the config's single one cannot express "
            f"(norms of another width than the pruned embedding width); stored in config.{OVERRIDES_KEY}"
        )
    return best


def _why(model: nn.Module, config: Any, fit: ConfigFit) -> list[str]:
    """In words: which pruned parts the config could not express, and why."""
    notes = []
    layers = attention_layers(model)
    in_attention = {n for n in fit.overrides if any(n.startswith(a + ".") for a in layers)}
    if in_attention:
        kinds = {(h.query, h.key_value, h.head_dim) for h in layers.values()}
        if len(kinds) > 1:
            notes.append("attention layers keep different numbers of heads, which no config expresses")
        else:
            q, _, dim = next(iter(kinds))
            notes.append(
                f"{type(config).__name__} cannot express {q} heads of width {dim} "
                "(it derives the head width from the hidden size and the head count)"
            )
    blocks = mlp_widths(model)
    # an MLP block may be the whole layer (OPT's fc1/fc2): attention shapes are not its doing
    if any(n.startswith(b + ".") for n in set(fit.overrides) - in_attention for b in blocks):
        if _uniform(list(blocks.values())) is None:
            notes.append("MLP blocks keep different widths, which no config expresses")
        else:
            notes.append(f"{type(config).__name__} has no field for the MLP width")
    notes.append(f"{len(fit.overrides)} parameter shapes are stored in config.{OVERRIDES_KEY}")
    return notes


def apply_fit(config: Any, fit: ConfigFit) -> None:
    """Write ``fit`` into ``config`` in place (the object the model's modules share)."""
    for k, v in fit.changes.items():
        setattr(config, k, v)
    if not fit.exact:
        setattr(config, OVERRIDES_KEY, {"shapes": fit.overrides, "epsilons": fit.epsilons, "notes": fit.notes})
    elif hasattr(config, OVERRIDES_KEY):
        delattr(config, OVERRIDES_KEY)

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

from .modules import attention_layers, is_conv1d, out_width

# Names (suffixes) of the first projection of an MLP block, across model families.
MLP_INPUT_NAMES = (
    "mlp.up_proj", "mlp.gate_proj", "mlp.fc1", "mlp.c_fc", "mlp.fc_in", "mlp.dense_h_to_4h",
    "intermediate.dense", "ffn.lin1", "feed_forward.w1", "fc1",
)
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
    """

    changes: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """Whether ``from_pretrained`` rebuilds the model from the config alone."""
        return not self.overrides


def mlp_widths(model: nn.Module) -> dict[str, int]:
    """Hidden width of every MLP block (by the name of its input projection)."""
    widths = {}
    for name, m in model.named_modules():
        if (isinstance(m, nn.Linear) or is_conv1d(m)) and any(
            name == s or name.endswith("." + s) for s in MLP_INPUT_NAMES
        ):
            block = name.rsplit(".", 1)[0] if "." in name else name
            widths.setdefault(block, out_width(m))
    return widths


def _uniform(values: list[int]) -> int | None:
    return values[0] if values and all(v == values[0] for v in values) else None


def _has_field(config: Any, name: str) -> bool:
    return name in config.to_dict() or name in getattr(config, "attribute_map", {})


def candidate_changes(model: nn.Module, config: Any) -> list[tuple[str, dict[str, Any]]]:
    """Candidate config changes, most complete first (heads and MLP, MLP only, heads only)."""
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
    out = [("heads and MLP", {**head_changes, **mlp_changes}), ("MLP", mlp_changes), ("heads", head_changes)]
    return [(label, c) for label, c in out if c] + [("none", {})]


def shape_mismatches(model: nn.Module, config: Any) -> dict[str, list[int]] | None:
    """Parameters whose shape in ``model`` differs from a model built from ``config``.

    ``None`` when ``config`` cannot even build the model class (an invalid head count).
    """
    try:
        with torch.device("meta"):
            fresh = type(model)(config)
    except Exception:
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
    return best


def _why(model: nn.Module, config: Any, fit: ConfigFit) -> list[str]:
    """In words: which pruned parts the config could not express, and why."""
    notes = []
    layers = attention_layers(model)
    if any(n.startswith(a + ".") for n in fit.overrides for a in layers):
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
    if any(n.startswith(b + ".") for n in fit.overrides for b in blocks):
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
    if fit.overrides:
        setattr(config, OVERRIDES_KEY, {"shapes": fit.overrides, "notes": fit.notes})
    elif hasattr(config, OVERRIDES_KEY):
        delattr(config, OVERRIDES_KEY)

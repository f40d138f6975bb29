"""Model spec files (catalog YAML or a Hugging Face ``config.json``) → validated workloads."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from models.workloads import TransformerSpec

from ._errors import SpecError
from ._files import MODEL_DIR, ids, read_mapping, resolve
from ._keys import KeyInfo, check, described, keys_of

MODEL_KEYS: dict[str, KeyInfo] = {
    "name": described("name", "str", "a display name", required=True),
    **keys_of(TransformerSpec),
    "ffn": described("ffn", "choice", "the FFN form", required=True, choices=("gated", "plain")),
    "tied_embeddings": described("tied_embeddings", "bool", "true or false"),
    "max_context_tokens": described("max_context_tokens", "int", "an integer > 0"),
    "hf_id": described("hf_id", "str", "a Hugging Face repo id"),
    "total_params_b": described("total_params_b", "positive", "billions > 0"),
    "source": described("source", "str", "a citation"),
}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    path: Path
    spec: TransformerSpec
    raw: dict[str, Any]


def model_ids() -> list[str]:
    return ids(MODEL_DIR)


def load_model(ref: str | Path) -> ModelEntry:
    """Load a model by catalog id, catalog-style YAML path, or Hugging Face config.json path."""
    path = resolve(ref, MODEL_DIR, "model", (".yaml", ".yml", ".json"))
    data = read_mapping(path)
    if path.suffix == ".json":
        data = _from_hf_config(path, data)
    v = check(path, data, MODEL_KEYS)
    if "head_dim" not in v and v["d_model"] % v["n_heads"]:
        raise SpecError(
            f"{path}: key 'd_model' = {v['d_model']}: expected a multiple of n_heads = {v['n_heads']} "
            "(or an explicit head_dim)"
        )
    head_dim = v.get("head_dim", v["d_model"] // v["n_heads"])
    if v["n_heads"] % v["n_kv_heads"]:
        raise SpecError(f"{path}: key 'n_kv_heads' = {v['n_kv_heads']}: expected a divisor of n_heads = {v['n_heads']}")
    n_experts, top_k = v.get("n_experts", 1), v.get("top_k", 1)
    if top_k > n_experts:
        raise SpecError(f"{path}: key 'top_k' = {top_k}: expected at most n_experts = {n_experts}")
    leaves = dict(
        n_layers=v["n_layers"],
        d_model=v["d_model"],
        n_heads=v["n_heads"],
        n_kv_heads=v["n_kv_heads"],
        head_dim=head_dim,
        d_ff=v["d_ff"],
        vocab_size=v["vocab_size"],
        n_experts=n_experts,
        top_k=top_k,
    )
    spec = TransformerSpec(
        **{k: np.asarray(float(x), dtype=np.float64) for k, x in leaves.items()},
        gated_ffn=v["ffn"] == "gated",
        moe=n_experts > 1,
        tied_embeddings=bool(v.get("tied_embeddings", False)),
    )
    return ModelEntry(path.stem if path.suffix != ".json" else str(v["name"]), str(v["name"]), path, spec, v)


# Hugging Face model types whose MLP is two matrices with a plain activation.
_PLAIN_FFN_TYPES = {"gpt2", "gpt_neox", "gptj", "bloom", "opt", "phi", "falcon", "gpt_bigcode", "mpt", "starcoder2"}


_ENCODER_DECODER_TYPES = {
    "t5",
    "mt5",
    "umt5",
    "bart",
    "mbart",
    "pegasus",
    "marian",
    "led",
    "longt5",
    "switch_transformers",
}


def _from_hf_config(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Map a Hugging Face ``config.json`` onto the catalog's model keys."""

    def first(*names: str, default: Any = None, what: str) -> Any:
        for n in names:
            if cfg.get(n) is not None:
                return cfg[n]
        if default is None:
            raise SpecError(f"{path}: missing key '{names[0]}': expected {what}")
        return default

    if cfg.get("is_encoder_decoder") or cfg.get("model_type") in _ENCODER_DECODER_TYPES:
        raise SpecError(
            f"{path}: model_type '{cfg.get('model_type')}' is an encoder-decoder model: expected a decoder-only "
            "model (encoder-decoder models are not modelled)"
        )
    d = first("hidden_size", "n_embd", "d_model", what="the model width (integer > 0)")
    heads = first("num_attention_heads", "n_head", "num_heads", what="the attention heads (integer > 0)")
    kv = first("num_key_value_heads", "n_head_kv", default=1 if cfg.get("multi_query") else heads, what="the KV heads")
    out = {
        "name": str(cfg.get("_name_or_path") or path.parent.name or path.stem),
        "n_layers": first("num_hidden_layers", "n_layer", "num_layers", what="the layer count (integer > 0)"),
        "d_model": d,
        "n_heads": heads,
        "n_kv_heads": kv,
        "d_ff": first(
            "moe_intermediate_size",
            "intermediate_size",
            "n_inner",
            "ffn_dim",
            default=4 * d if isinstance(d, int) else None,
            what="the FFN width",
        ),
        "vocab_size": first("vocab_size", what="the vocabulary size (integer > 0)"),
        "ffn": "plain" if cfg.get("model_type") in _PLAIN_FFN_TYPES else "gated",
        "tied_embeddings": bool(cfg.get("tie_word_embeddings", True)),
    }
    if cfg.get("head_dim"):
        out["head_dim"] = cfg["head_dim"]
    context = cfg.get("max_position_embeddings") or cfg.get("n_positions") or cfg.get("seq_length")
    if isinstance(context, int) and context > 0:
        out["max_context_tokens"] = context
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    if experts:
        out["n_experts"] = experts
        out["top_k"] = cfg.get("num_experts_per_tok", 2)
    return out

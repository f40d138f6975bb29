"""Model spec files (catalog YAML or a Hugging Face ``config.json``) → validated workloads."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from models.workloads import DiffusionSpec, TransformerSpec

from ._errors import SpecError, suggest
from ._files import MODEL_DIR, ids, read_mapping, resolve
from ._keys import KeyInfo, check, described, keys_of

MODEL_KEYS: dict[str, KeyInfo] = {
    "name": described("name", "str", "a display name", required=True),
    **keys_of(TransformerSpec),
    "ffn": described("ffn", "choice", "the FFN form", required=True, choices=("gated", "plain")),
    "attention": described("attention", "choice", "the attention form", choices=("gqa", "mla")),
    "encoder": described("encoder", "bool", "true or false (one pass per input, no KV cache, no decode)"),
    "bidirectional": described("bidirectional", "bool", "true or false (every token attends to every token)"),
    "vision_tower": described("vision_tower", "str", "the catalog id of a vision encoder (VLM)"),
    "tied_embeddings": described("tied_embeddings", "bool", "true or false"),
    "max_context_tokens": described("max_context_tokens", "int", "an integer > 0"),
    "hf_id": described("hf_id", "str", "a Hugging Face repo id"),
    "total_params_b": described("total_params_b", "positive", "billions > 0"),
    "source": described("source", "str", "a citation"),
}


DIFFUSION_KEYS: dict[str, KeyInfo] = {
    "name": described("name", "str", "a display name", required=True),
    "kind": described("kind", "choice", "the workload kind", required=True, choices=("diffusion",)),
    **keys_of(DiffusionSpec),
    "encoders": described("encoders", "list", "catalog ids of the text encoders", required=True),
    "encoder_tokens": described("encoder_tokens", "list", "tokens per prompt of each text encoder", required=True),
    "vae_channels": described("vae_channels", "list", "the VAE's block_out_channels", required=True),
    "hf_id": described("hf_id", "str", "a Hugging Face repo id"),
    "total_params_b": described("total_params_b", "positive", "billions > 0"),
    "default_guidance": described("default_guidance", "positive", "the pipeline's default guidance scale"),
}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    path: Path
    spec: TransformerSpec | DiffusionSpec
    raw: dict[str, Any]


def _diffusion(path: Path, data: dict[str, Any]) -> ModelEntry:
    """A text-to-image pipeline: denoiser keys, its text encoders (catalog ids) and VAE."""
    v = check(path, data, DIFFUSION_KEYS)
    encoders = [load_model(e) for e in v["encoders"]]
    if len(v["encoder_tokens"]) != len(encoders):
        raise SpecError(f"{path}: key 'encoder_tokens': expected one count per encoder ({len(encoders)})")
    for e in encoders:
        if not e.spec.encoder:
            raise SpecError(f"{path}: key 'encoders': '{e.id}' is not an encoder (expected encoder: true)")
    leaves = {f.name: v[f.name] for f in dataclasses.fields(DiffusionSpec) if f.name in v and f.name not in
              ("encoders", "encoder_tokens", "vae_channels")}  # fmt: skip
    spec = DiffusionSpec(
        **{k: np.asarray(float(x), dtype=np.float64) for k, x in leaves.items()},
        encoder_tokens=tuple(np.asarray(float(x), dtype=np.float64) for x in v["encoder_tokens"]),
        encoders=tuple(e.spec for e in encoders),
        vae_channels=tuple(int(c) for c in v["vae_channels"]),
    )
    return ModelEntry(path.stem, str(v["name"]), path, spec, v)


def model_ids() -> list[str]:
    return ids(MODEL_DIR)


def load_model(ref: str | Path) -> ModelEntry:
    """Load a model by catalog id, catalog-style YAML path, or Hugging Face config.json path
    (``PATH.json@TYPE`` reads a config of a model_type this loader does not know with the keys
    of TYPE, e.g. ``my/config.json@llama``)."""
    read_as = None
    if isinstance(ref, str) and "@" in ref and ref.rsplit("@", 1)[0].endswith(".json"):
        ref, read_as = ref.rsplit("@", 1)
        if read_as not in HF_MODEL_TYPES:
            raise SpecError(
                f"{ref}: read as '{read_as}'{suggest(read_as, HF_MODEL_TYPES)}: expected one of "
                f"{', '.join(sorted(HF_MODEL_TYPES))}"
            )
    path = resolve(ref, MODEL_DIR, "model", (".yaml", ".yml", ".json"))
    data = read_mapping(path)
    if path.suffix == ".json":
        data = _from_hf_config(path, data, read_as)
    if data.get("kind") == "diffusion":
        return _diffusion(path, data)
    return _transformer_entry(path, data)


def _check_shape(path: Path, v: dict[str, Any]) -> None:
    """Heads that split the width, KV heads that divide the heads, top-k within the experts,
    layer counts within the layers."""
    if "head_dim" not in v and v["d_model"] % v["n_heads"]:
        raise SpecError(
            f"{path}: key 'd_model' = {v['d_model']}: expected a multiple of n_heads = {v['n_heads']} "
            "(or an explicit head_dim)"
        )
    if v["n_heads"] % v["n_kv_heads"]:
        raise SpecError(f"{path}: key 'n_kv_heads' = {v['n_kv_heads']}: expected a divisor of n_heads = {v['n_heads']}")
    n_experts, top_k = v.get("n_experts", 1), v.get("top_k", 1)
    if top_k > n_experts:
        raise SpecError(f"{path}: key 'top_k' = {top_k}: expected at most n_experts = {n_experts}")
    for key in ("dense_layers", "ssm_layers", "window_layers", "mtp_layers"):
        if v.get(key, 0) > v["n_layers"] or v.get(key, 0) != int(v.get(key, 0)):
            raise SpecError(f"{path}: key '{key}' = {v[key]}: expected an integer from 0 to n_layers = {v['n_layers']}")


def _check_parts(path: Path, v: dict[str, Any], attention: str, ssm: bool, ssd: bool) -> None:
    """The keys each part needs: MLA's widths, a Mamba mixer's, a vision encoder's."""
    needed = [(k, "for attention: mla") for k in ("kv_lora_rank", "qk_rope_dim", "qk_nope_dim", "v_head_dim")
              if attention == "mla"]  # fmt: skip
    if ssm:
        keys = ("ssm_d_inner", "ssm_d_state", "ssm_d_conv") + (("ssm_groups",) if ssd else ("ssm_dt_rank",))
        needed += [(k, "when ssm_layers > 0") for k in keys]
    if v.get("patch_px", 0) > 0:
        needed += [(k, "for a vision encoder (patch_px)") for k in ("channels", "image_px")]
    for key, when in needed:
        if not v.get(key):
            raise SpecError(f"{path}: key '{key}' missing: expected an integer > 0 {when}")
    if ssd and v["ssm_d_inner"] % v["ssm_heads"]:
        raise SpecError(
            f"{path}: key 'ssm_heads' = {v['ssm_heads']}: expected a divisor of ssm_d_inner = {v['ssm_d_inner']}"
        )


def _transformer_entry(path: Path, data: dict[str, Any]) -> ModelEntry:
    """A decoder, encoder or vision-language model from its checked keys."""
    tower = data.pop("vision_tower", None)
    v = check(path, data, MODEL_KEYS)
    _check_shape(path, v)
    head_dim = v.get("head_dim", v["d_model"] // v["n_heads"])
    n_experts, top_k = v.get("n_experts", 1), v.get("top_k", 1)
    attention = v.get("attention", "gqa")
    ssm = v.get("ssm_layers", 0) > 0
    ssd = ssm and v.get("ssm_heads", 0) > 0  # Mamba-2
    _check_parts(path, v, attention, ssm, ssd)
    vision = v.get("patch_px", 0) > 0
    if v.get("window", 0) and "window_layers" not in v:
        v["window_layers"] = v["n_layers"] - v.get("ssm_layers", 0)  # every attention layer
    optional = (
        "d_expert", "n_shared_experts", "dense_layers", "window", "window_layers", "kv_lora_rank", "q_lora_rank",
        "qk_rope_dim", "qk_nope_dim", "v_head_dim", "mtp_layers", "ssm_layers", "ssm_d_inner", "ssm_d_state",
        "ssm_d_conv", "ssm_dt_rank", "ssm_heads", "ssm_groups", "patch_px", "channels", "image_px", "vision_merge",
    )  # fmt: skip
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
        **{k: v.get(k, 0) for k in optional},
        tied_embeddings=1.0 if v.get("tied_embeddings", False) else 0.0,
        gated_ffn=1.0 if v["ffn"] == "gated" else 0.0,
    )
    vision_tower: tuple = ()
    if tower is not None:
        entry = _transformer_entry(path, dict(tower)) if isinstance(tower, dict) else load_model(tower)
        if not entry.spec.vision:
            raise SpecError(f"{path}: key 'vision_tower' = {tower!r}: expected a vision encoder (with patch_px)")
        if not v.get("vision_merge"):
            raise SpecError(f"{path}: key 'vision_merge' missing: expected patches merged per side (e.g. 2)")
        vision_tower = (entry.spec,)
        data["vision_tower"] = tower
    spec = TransformerSpec(
        vision_tower=vision_tower,
        **{k: np.asarray(float(x), dtype=np.float64) for k, x in leaves.items()},
        moe=n_experts > 1,
        attention=attention,
        ssm=ssm,
        parts=tuple(
            part
            for part, present in (
                ("ffn", v["d_ff"] > 0 or n_experts > 1),
                ("window", v.get("window", 0) > 0),
                ("shared_experts", n_experts > 1 and v.get("n_shared_experts", 0) > 0),
                ("dense_layers", n_experts > 1 and v.get("dense_layers", 0) > 0),
                ("q_lora", attention == "mla" and v.get("q_lora_rank", 0) > 0),
                ("ssd", ssd),
            )
            if present
        ),
        encoder=bool(v.get("encoder", False)) or vision,
        bidirectional=bool(v.get("bidirectional", False)) or vision,
        vision=vision,
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


# Architectures a config.json may name that are not decoder LLMs this loader can map.
_NOT_MODELLED = {
    "zamba": "Zamba's shared attention blocks (one weight set run at several depths) are not modelled",
    "zamba2": "Zamba's shared attention blocks (one weight set run at several depths) are not modelled",
}


# The Hugging Face model types whose config keys this loader reads (each a decoder, a Mamba
# stack, a hybrid, a VLM or a ViT of a layout it models); another model_type is refused unless
# the user names one of these to read it as (``config.json@llama``).
HF_MODEL_TYPES = frozenset(
    {
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "phi",
        "phi3", "gpt2", "gpt_neox", "gptj", "bloom", "opt", "falcon", "gpt_bigcode", "starcoder2", "deepseek_v2",
        "deepseek_v3", "olmo", "olmo2", "granite", "stablelm", "jamba", "mamba", "falcon_mamba", "mamba2",
        "qwen2_vl", "vit",
    }
)  # fmt: skip
# Keys of every config that do not change FLOPs, bytes or memory (numerics, token ids, training).
_NO_COST_KEYS = frozenset(
    {
        "architectures", "torch_dtype", "transformers_version", "_name_or_path", "bos_token_id", "eos_token_id",
        "pad_token_id", "rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon", "rope_theta", "rope_scaling",
        "hidden_act", "activation_function", "initializer_range", "use_cache", "attention_dropout",
        "attention_bias", "mlp_bias", "hidden_dropout", "dropout", "model_type", "pretraining_tp",
        "output_router_logits", "router_aux_loss_coef", "tie_word_embeddings", "embd_pdrop", "resid_pdrop",
        "attn_pdrop", "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
        "summary_first_dropout", "scale_attn_weights", "rope_type", "partial_rotary_factor", "use_sliding_window",
    }
)  # fmt: skip


# Keys whose null means "the default" in transformers (GPT-2's n_inner: 4 x width; a missing
# KV-head count: one per attention head); any other null is refused, never defaulted.
_NULL_IS_DEFAULT = frozenset({"n_inner", "num_key_value_heads"})


class _Reads(dict):
    """A config that records which keys the mapping looked at (the rest it would ignore)."""

    def __init__(self, data: dict[str, Any]):
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: Any) -> bool:
        self.read.add(key)
        return super().__contains__(key)


def _from_hf_config(path: Path, cfg: dict[str, Any], read_as: str | None = None) -> dict[str, Any]:
    """Map a Hugging Face ``config.json`` onto the catalog's model keys (with ``read_as``, as a
    config of that model_type). What it cannot model (an encoder-decoder, a vision tower, a
    diffusers component, a layer pattern it does not know, a model_type it does not know) is
    refused in one line naming the key, never dropped silently."""
    stated = cfg.get("model_type")
    cfg = _Reads({**cfg, "model_type": read_as} if read_as else cfg)
    out = _map_hf_config(path, cfg)
    if read_as is None and stated not in HF_MODEL_TYPES:
        ignored = sorted(k for k in cfg if k not in cfg.read and k not in _NO_COST_KEYS and not k.startswith("_"))
        shown = ", ".join(ignored[:8]) + (f" and {len(ignored) - 8} more" if len(ignored) > 8 else "")
        raise SpecError(
            f"{path}: key 'model_type' = {stated!r}: not a model_type this loader knows; reading it as a "
            f"{'dense' if out.get('n_experts', 1) == 1 else 'MoE'} decoder would ignore "
            f"{shown or 'no key'}: expected one of {', '.join(sorted(HF_MODEL_TYPES))}, or PATH@TYPE to read it "
            "as one of them (e.g. config.json@llama)"
        )
    return out


def _refuse_unmodelled(path: Path, cfg: dict[str, Any], refuse: Any) -> None:
    """Encoder-decoders, diffusers components, vision towers other than Qwen2-VL's and the
    architectures listed as not modelled are refused, naming the key."""
    model_type = cfg.get("model_type")
    if cfg.get("is_encoder_decoder") or model_type in _ENCODER_DECODER_TYPES:
        raise SpecError(
            f"{path}: model_type '{model_type}' is an encoder-decoder model: expected a decoder-only "
            "model (encoder-decoder models are not modelled)"
        )
    if "_class_name" in cfg:
        raise refuse("_class_name", "a diffusers component: expected a transformers config.json (not modelled yet)")
    if "vision_config" in cfg and model_type != "qwen2_vl":
        raise refuse(
            "vision_config", f"the vision tower of model_type '{model_type}' is not modelled: expected qwen2_vl"
        )
    if model_type in _NOT_MODELLED:
        raise refuse("model_type", _NOT_MODELLED[model_type])


def _mixer_keys(path: Path, cfg: dict[str, Any], d: Any, layers: Any, first: Any) -> dict[str, Any]:
    """A Mamba stack's mixer keys, or the attention heads and FFN of a decoder."""
    model_type = cfg.get("model_type")
    if model_type in ("mamba", "falcon_mamba", "mamba2"):
        # Mamba stacks (Gu & Dao 2023; Dao & Gu 2024): a Mamba mixer per layer, no attention, no FFN.
        out = _mamba2_keys(path, cfg, d, first) if model_type == "mamba2" else _mamba_keys(cfg, d, first)
        return out | dict(n_heads=1, n_kv_heads=1, d_ff=0, ffn="plain", ssm_layers=layers)
    heads = first("num_attention_heads", "n_head", "num_heads", what="the attention heads (integer > 0)")
    kv = first("num_key_value_heads", "n_head_kv", default=1 if cfg.get("multi_query") else heads, what="the KV heads")
    d_ff = first("intermediate_size", "n_inner", "ffn_dim", default=4 * d if isinstance(d, int) else None,
                 what="the FFN width")  # fmt: skip
    return dict(n_heads=heads, n_kv_heads=kv, d_ff=d_ff, ffn="plain" if model_type in _PLAIN_FFN_TYPES else "gated")


def _moe_keys(cfg: dict[str, Any], layers: Any, out: dict[str, Any], refuse: Any) -> dict[str, Any]:
    """Routed experts (a count >= 1; 1 is dense), experts per token, their width and layout."""
    key = next((k for k in ("num_local_experts", "num_experts", "n_routed_experts") if cfg.get(k) is not None), None)
    experts = cfg[key] if key else None
    if key and (isinstance(experts, bool) or not isinstance(experts, int) or experts < 1):
        raise refuse(key, "expected the routed experts per MoE layer (an integer >= 1; 1 for a dense model)")
    if not experts or experts <= 1:
        return {}
    moe: dict[str, Any] = {"n_experts": experts, "top_k": cfg.get("num_experts_per_tok", 2)}
    if cfg.get("moe_intermediate_size"):
        moe["d_expert"] = cfg["moe_intermediate_size"]
    return moe | _moe_layout(cfg, layers, out | moe, refuse)


def _map_hf_config(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    def first(*names: str, default: Any = None, what: str) -> Any:
        for n in names:
            if n in cfg and not (cfg[n] is None and n in _NULL_IS_DEFAULT):
                if isinstance(cfg[n], bool) or not isinstance(cfg[n], int | float):
                    raise SpecError(f"{path}: key '{n}' = {cfg[n]!r}: expected {what}")
                return cfg[n]
        if default is None:
            raise SpecError(f"{path}: missing key '{names[0]}': expected {what}")
        return default

    def refuse(key: str, why: str) -> SpecError:
        return SpecError(f"{path}: key '{key}' = {cfg.get(key)!r}: {why}")

    model_type = cfg.get("model_type")
    _refuse_unmodelled(path, cfg, refuse)
    if model_type == "vit":
        return _vit(path, cfg)
    if "image_size" in cfg or "patch_size" in cfg:
        raise refuse("patch_size", f"a vision model of model_type '{model_type}': expected model_type vit")
    d = first("hidden_size", "n_embd", "d_model", what="the model width (integer > 0)")
    layers = first("num_hidden_layers", "n_layer", "num_layers", what="the layer count (integer > 0)")
    out: dict[str, Any] = {"name": str(cfg.get("_name_or_path") or path.parent.name or path.stem), "n_layers": layers}
    out.update(_mixer_keys(path, cfg, d, layers, first))
    out.update(d_model=d, vocab_size=first("vocab_size", what="the vocabulary size (integer > 0)"))
    out["tied_embeddings"] = bool(cfg.get("tie_word_embeddings", True))
    if cfg.get("head_dim"):
        out["head_dim"] = cfg["head_dim"]
    context = cfg.get("max_position_embeddings") or cfg.get("n_positions") or cfg.get("seq_length")
    if isinstance(context, int) and context > 0:
        out["max_context_tokens"] = context
    out.update(_moe_keys(cfg, layers, out, refuse))
    if cfg.get("kv_lora_rank"):
        # MLA (DeepSeek-V2/V3): latent KV cache; num_key_value_heads is not a GQA count there.
        out.update(
            attention="mla",
            kv_lora_rank=cfg["kv_lora_rank"],
            q_lora_rank=cfg.get("q_lora_rank") or 0,
            qk_rope_dim=first("qk_rope_head_dim", what="the MLA rotary key width"),
            qk_nope_dim=first("qk_nope_head_dim", what="the MLA non-rotary key width"),
            v_head_dim=first("v_head_dim", what="the MLA value width"),
            n_kv_heads=out["n_heads"],
        )
    return out | _extra_keys(path, cfg, d, layers, first, refuse)


def _extra_keys(path: Path, cfg: dict[str, Any], d: Any, layers: Any, first: Any, refuse: Any) -> dict[str, Any]:
    """Qwen2-VL's vision tower, multi-token prediction layers, sliding windows, Jamba's hybrid layout."""
    model_type = cfg.get("model_type")
    out: dict[str, Any] = {}
    if model_type == "qwen2_vl":
        out.update(_qwen2_vl_tower(path, cfg.get("vision_config") or {}))
    if cfg.get("num_nextn_predict_layers"):
        out["mtp_layers"] = cfg["num_nextn_predict_layers"]
    out.update(_window(cfg, layers, model_type, refuse))
    if model_type == "jamba":
        out.update(_mamba_keys(cfg, d, first, prefix="mamba_"))
        period, offset = cfg.get("attn_layer_period"), cfg.get("attn_layer_offset")
        if not period or offset is None:
            raise refuse("attn_layer_period", "expected the attention layer period and offset of a Jamba config")
        out["ssm_layers"] = layers - len(range(offset, layers, period))
    return out


def _mamba_keys(cfg: dict[str, Any], d: int, first: Any, prefix: str = "") -> dict[str, Any]:
    """Mamba-1 mixer dimensions (HF MambaConfig / JambaConfig keys)."""
    d_state = first(f"{prefix}d_state" if prefix else "state_size", what="the Mamba state size")
    d_conv = first(f"{prefix}d_conv" if prefix else "conv_kernel", what="the Mamba convolution width")
    expand = cfg.get(f"{prefix}expand" if prefix else "expand", 2)
    # intermediate_size is what the weights use (falcon-mamba-7b publishes expand 16 beside 8192).
    inner = (cfg.get("intermediate_size") if not prefix else None) or expand * d
    rank = cfg.get(f"{prefix}dt_rank" if prefix else "time_step_rank", "auto")
    rank = -(-d // 16) if rank == "auto" else rank  # Mamba's default ⌈d_model / 16⌉
    return {"ssm_d_inner": inner, "ssm_d_state": d_state, "ssm_d_conv": d_conv, "ssm_dt_rank": rank}


def _mamba2_keys(path: Path, cfg: dict[str, Any], d: int, first: Any) -> dict[str, Any]:
    """Mamba-2 mixer dimensions (HF Mamba2Config keys)."""
    heads = first("num_heads", what="the Mamba-2 head count")
    head_dim = first("head_dim", what="the Mamba-2 head width")
    inner = cfg.get("expand", 2) * d
    if heads * head_dim != inner:
        raise SpecError(
            f"{path}: key 'num_heads' = {heads}: expected num_heads × head_dim = expand × hidden_size = {inner}"
        )
    return {
        "ssm_d_inner": inner,
        "ssm_d_state": first("state_size", what="the Mamba-2 state size"),
        "ssm_d_conv": first("conv_kernel", what="the Mamba-2 convolution width"),
        "ssm_heads": heads,
        "ssm_groups": first("n_groups", what="the Mamba-2 groups sharing B and C"),
    }


def _moe_layout(cfg: dict[str, Any], layers: int, out: dict[str, Any], refuse: Any) -> dict[str, Any]:
    """Which layers are MoE and which shared experts every token runs."""
    extra: dict[str, Any] = {}
    if cfg.get("n_shared_experts"):
        extra["n_shared_experts"] = cfg["n_shared_experts"]  # DeepSeek: each as wide as a routed expert
    if cfg.get("shared_expert_intermediate_size"):
        # Qwen2-MoE: one shared expert of this width, counted in routed-expert widths.
        width = out.get("d_expert") or out["d_ff"]
        if cfg["shared_expert_intermediate_size"] % width:
            raise refuse("shared_expert_intermediate_size", f"expected a multiple of the expert width {width}")
        extra["n_shared_experts"] = cfg["shared_expert_intermediate_size"] // width
    if cfg.get("moe_layer_freq", 1) != 1:
        raise refuse("moe_layer_freq", "expected 1 (a MoE FFN on every layer after the dense ones)")
    dense = cfg.get("first_k_dense_replace") or 0
    if cfg.get("mlp_only_layers"):
        dense += len(cfg["mlp_only_layers"])
    step = cfg.get("decoder_sparse_step") or 1
    if step > 1:
        dense += layers - len([i for i in range(layers) if (i + 1) % step == 0])
    if cfg.get("expert_layer_period"):
        period, offset = cfg["expert_layer_period"], cfg.get("expert_layer_offset", 0)
        dense += layers - len(range(offset, layers, period))
    if dense:
        extra["dense_layers"] = dense
    return extra


def _window(cfg: dict[str, Any], layers: int, model_type: Any, refuse: Any) -> dict[str, Any]:
    """Sliding-window attention: on every layer (Mistral), every other layer (Gemma-2), the
    layers a ``layer_types`` list names, or none when a config switches it off (Qwen2)."""
    window = cfg.get("sliding_window")
    if not window or cfg.get("use_sliding_window") is False:
        return {}
    if "layer_types" in cfg:
        windowed = sum(1 for x in cfg["layer_types"] if x == "sliding_attention")
    elif model_type == "gemma2":
        windowed = layers - layers // 2  # even layers local (Gemma 2 report §2: alternating local/global)
    elif model_type in ("mistral", "mixtral", "starcoder2", "phi3", "qwen2", "qwen2_moe"):
        windowed = layers
    else:
        raise refuse("sliding_window", f"the window's layer pattern of model_type '{model_type}' is not known")
    return {"window": window, "window_layers": windowed}


def _vit(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """A ViT image encoder (HF ViTConfig): patches and [CLS] through a bidirectional encoder,
    the classifier head on [CLS] (``num_labels`` classes, from ``id2label`` when given)."""
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
               if not cfg.get(k)]  # fmt: skip
    if missing:
        raise SpecError(f"{path}: missing key '{missing[0]}': expected a ViT config (model_type vit)")
    d = cfg["hidden_size"]
    labels = len(cfg["id2label"]) if isinstance(cfg.get("id2label"), dict) else cfg.get("num_labels", 1000)
    return {
        "name": str(cfg.get("_name_or_path") or path.parent.name or path.stem),
        "n_layers": cfg["num_hidden_layers"],
        "d_model": d,
        "n_heads": cfg["num_attention_heads"],
        "n_kv_heads": cfg["num_attention_heads"],
        "d_ff": cfg.get("intermediate_size", 4 * d),
        "vocab_size": labels,
        "ffn": "plain",
        "patch_px": cfg["patch_size"],
        "image_px": cfg["image_size"],
        "channels": cfg.get("num_channels", 3),
        "tied_embeddings": True,
    }


# Qwen2VLVisionConfig defaults (transformers configuration_qwen2_vl.py), which re-saved
# configs omit.
_QWEN2_VL_VISION = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4, "patch_size": 14,
                    "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3}  # fmt: skip


def _qwen2_vl_tower(path: Path, vision: dict[str, Any]) -> dict[str, Any]:
    """Qwen2-VL's vision tower (Wang et al. 2024, arXiv:2409.12191): a ViT over 14 × 14 patches
    of two frames (an image is repeated), no [CLS], 2 × 2 patches merged into one LM token by
    an MLP. Dynamic resolution: 448 × 448 is taken as the default image (256 LM tokens)."""
    v = _QWEN2_VL_VISION | {k: vision[k] for k in _QWEN2_VL_VISION if vision.get(k)}
    d = v["embed_dim"]
    tower = {
        "name": f"{path.parent.name or path.stem} vision tower",
        "n_layers": v["depth"],
        "d_model": d,
        "n_heads": v["num_heads"],
        "n_kv_heads": v["num_heads"],
        "d_ff": int(v["mlp_ratio"] * d),
        "vocab_size": 1,  # no classifier: the projector follows
        "ffn": "plain",
        "patch_px": v["patch_size"],
        "channels": v["in_channels"] * v["temporal_patch_size"],
        "image_px": 448,
        "tied_embeddings": True,
    }
    return {"vision_tower": tower, "vision_merge": v["spatial_merge_size"]}

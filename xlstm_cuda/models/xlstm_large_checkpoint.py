"""Checkpoint directories of xLSTM 7B: reading transformers' and the reference package's layouts,
writing transformers', and converting between the "single" and "fused" weight modes.

Layouts (tensor names are the reference's; transformers' name the embedding
`backbone.embeddings.weight` instead of `embedding.weight`):
- transformers: config.json (xLSTMConfig) and model.safetensors, or shards listed in
  model.safetensors.index.json ({"weight_map": {tensor: file}}).
- reference (`xlstm.xlstm_large`): config.yaml (xLSTMLargeConfig fields) and model.safetensors or
  model_0.safetensors, model_1.safetensors, ...
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from .xlstm_large import WeightMode, _empty_model, model_from_tensors, xLSTMLargeConfig

TRANSFORMERS_EMBEDDING, EMBEDDING = "backbone.embeddings.weight", "embedding.weight"
INDEX = "model.safetensors.index.json"

# Fused tensor <- the single tensors it concatenates (rows in this order), per block.
_FUSED_PARTS = {
    "mlstm_layer.qkv_opreact": ("mlstm_layer.q", "mlstm_layer.k", "mlstm_layer.v", "mlstm_layer.ogate_preact"),
    "mlstm_layer.ifgate_preact": ("mlstm_layer.igate_preact", "mlstm_layer.fgate_preact"),
    "ffn.proj_up_gate_z": ("ffn.proj_up_gate", "ffn.proj_up"),
}


def convert_weight_mode(state_dict: dict[str, torch.Tensor], config: xLSTMLargeConfig,
                        weight_mode: WeightMode) -> dict[str, torch.Tensor]:
    """Convert the state dict of a model with `config` (its weight_mode) to `weight_mode` ("single" or
    "fused"), in place, and return it: q, k, v, o (and i, f; the SwiGLU's gate and up) concatenated
    along the output rows, or split. In place so that a loaded checkpoint is never held twice: each
    block's parts are dropped as their concatenation is made."""
    if weight_mode not in ("single", "fused"):
        raise ValueError(f"convert_weight_mode: weight_mode must be 'single' or 'fused', got {weight_mode!r}")
    out = state_dict
    if weight_mode == config.weight_mode:
        return out
    sizes = {"mlstm_layer.qkv_opreact": (config.qk_dim, config.qk_dim, config.v_dim, config.v_dim),
             "mlstm_layer.ifgate_preact": (config.num_heads, config.num_heads),
             "ffn.proj_up_gate_z": None}  # two equal halves
    for block in range(config.num_blocks):
        prefix = f"backbone.blocks.{block}."
        for fused, parts in _FUSED_PARTS.items():
            for suffix in (".weight", ".bias"):
                if weight_mode == "fused":
                    names = [prefix + part + suffix for part in parts]
                    if names[0] not in out:
                        continue  # no biases
                    missing = [name for name in names if name not in out]
                    if missing:
                        raise KeyError(f"convert_weight_mode: missing tensor(s) {missing}")
                    out[prefix + fused + suffix] = torch.cat([out.pop(name) for name in names], dim=0)
                else:
                    name = prefix + fused + suffix
                    if name not in out:
                        continue
                    tensor = out.pop(name)
                    split = sizes[fused] or (tensor.shape[0] // 2,) * 2
                    if sum(split) != tensor.shape[0]:
                        raise ValueError(f"convert_weight_mode: {name} has {tensor.shape[0]} rows, expected "
                                         f"{sum(split)}")
                    for part, piece in zip(parts, tensor.split(split, dim=0)):
                        out[prefix + part + suffix] = piece.clone()
    return out


def name_from_transformers(name: str) -> str | None:
    """Our parameter for a tensor of transformers' xLSTMForCausalLM (None: not one of ours)."""
    return {TRANSFORMERS_EMBEDDING: EMBEDDING, EMBEDDING: None}.get(name, name)


def name_to_transformers(name: str) -> str:
    """transformers' name for our parameter `name`."""
    return TRANSFORMERS_EMBEDDING if name == EMBEDDING else name


def weight_mode_of(names) -> WeightMode:
    return "fused" if any(name.endswith("qkv_opreact.weight") for name in names) else "single"


def _weight_files(path: Path, layout: str) -> list[Path]:
    """The safetensors files of the checkpoint, each checked to exist."""
    single = path / "model.safetensors"
    if layout == "transformers" and (path / INDEX).exists():
        try:
            weight_map = json.loads((path / INDEX).read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path / INDEX}: not a safetensors index (no weight_map): {error}") from error
        files = [path / name for name in dict.fromkeys(weight_map.values())]
        for file in files:
            if not file.is_file():
                raise FileNotFoundError(f"{path / INDEX} lists the shard {file.name}, which is missing from {path}")
        return files
    if single.is_file():
        return [single]
    shards = []
    while layout == "reference" and (path / f"model_{len(shards)}.safetensors").is_file():
        shards.append(path / f"model_{len(shards)}.safetensors")
    if not shards:
        expected = "model.safetensors or model_0.safetensors, ..." if layout == "reference" else \
            f"model.safetensors or {INDEX}"
        raise FileNotFoundError(f"{path}: no weights ({expected})")
    return shards


def _read_config(path: Path) -> tuple[str, xLSTMLargeConfig]:
    if not path.is_dir():
        raise FileNotFoundError(f"from_pretrained: {path} is not a directory")
    if (path / "config.json").is_file():
        source = path / "config.json"
        try:
            values = json.loads(source.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON: {error}") from error
        return "transformers", xLSTMLargeConfig.from_transformers_dict(values, str(source))
    if (path / "config.yaml").is_file():
        import yaml  # only for the reference's layout
        source = path / "config.yaml"
        values = yaml.safe_load(source.read_text())
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a mapping of config fields")
        return "reference", xLSTMLargeConfig.from_dict(values, str(source))
    raise FileNotFoundError(f"from_pretrained: {path} has neither config.json (transformers) nor config.yaml "
                            "(xlstm reference package)")


def load(path: Path, dtype: torch.dtype | None, device: torch.device, weight_mode: WeightMode | None):
    """xLSTMLarge.from_pretrained (see there)."""
    from safetensors import safe_open  # checkpoints need safetensors; the model itself does not

    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"from_pretrained: dtype must be a floating-point torch.dtype or None, got {dtype!r}")
    layout, config = _read_config(path)
    files = _weight_files(path, layout)
    names_in_files = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            names_in_files[file] = list(handle.keys())
    stored_mode = weight_mode_of(name for names in names_in_files.values() for name in names)
    stored = replace(config, weight_mode=stored_mode)
    expected = {name: tuple(t.shape) for name, t in _empty_model(stored).state_dict().items()}
    tensors: dict[str, torch.Tensor] = {}
    where: dict[str, Path] = {}
    for file, names in names_in_files.items():
        with safe_open(str(file), framework="pt") as handle:
            for stored_name in names:
                name = name_from_transformers(stored_name) if layout == "transformers" else stored_name
                if name not in expected:
                    raise ValueError(f"{file}: unknown tensor {stored_name!r} for this config")
                if name in where:
                    raise ValueError(f"{file}: tensor {stored_name!r} is also in {where[name]}")
                shape = tuple(handle.get_slice(stored_name).get_shape())
                if shape != expected[name]:
                    raise ValueError(f"{file}: tensor {stored_name!r} has shape {list(shape)}, expected "
                                     f"{list(expected[name])} for this config")
                tensor = handle.get_tensor(stored_name)
                tensors[name] = tensor.to(device=device, dtype=dtype if dtype is not None else tensor.dtype)
                where[name] = file
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise KeyError(f"{path}: checkpoint lacks tensor(s) {missing}")
    target = replace(config, weight_mode=weight_mode or stored_mode)
    return model_from_tensors(target, convert_weight_mode(tensors, stored, target.weight_mode)).eval()


def _clear_old_checkpoint(path: Path) -> None:
    for file in [path / "config.json", path / "model.safetensors", path / INDEX, *path.glob("model-*-of-*.safetensors")]:
        if file.is_file():
            file.unlink()


def save(model, path: Path, overwrite: bool, max_shard_bytes: int | None) -> None:
    """xLSTMLarge.save_pretrained (see there)."""
    from safetensors.torch import save_file

    if max_shard_bytes is not None and (isinstance(max_shard_bytes, bool) or not isinstance(max_shard_bytes, int)
                                        or max_shard_bytes < 1):
        raise ValueError(f"save_pretrained: max_shard_bytes must be a positive int or None, got {max_shard_bytes!r}")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"save_pretrained: {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(f"save_pretrained: {path} is not empty; pass overwrite=True to replace its "
                                  "checkpoint")
        _clear_old_checkpoint(path)
    values = model.config.to_transformers_dict()
    path.mkdir(parents=True, exist_ok=True)
    tensors = {name_to_transformers(name): t.detach().contiguous().cpu()
               for name, t in model.state_dict().items()}
    values["dtype"] = str(model.lm_head.weight.dtype).removeprefix("torch.")
    if max_shard_bytes is None:
        save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        shards, size = [[]], 0
        for name, t in tensors.items():
            nbytes = t.numel() * t.element_size()
            if shards[-1] and size + nbytes > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(name)
            size += nbytes
        weight_map = {}
        for index, names in enumerate(shards, 1):
            file = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
            save_file({name: tensors[name] for name in names}, str(path / file), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(names, file))
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        (path / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (path / "config.json").write_text(json.dumps(values, indent=2, sort_keys=True))


__all__ = ["convert_weight_mode", "load", "weight_mode_of", "name_from_transformers", "name_to_transformers", "save"]

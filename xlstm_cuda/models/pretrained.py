"""save_pretrained / from_pretrained: a directory with config.json and model.safetensors."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class PretrainedMixin:
    """For a module with a `config` (to_dict / from_dict) whose class has `config_class`."""

    def tensors_to_save(self) -> dict[str, torch.Tensor]:
        """The state dict without aliases: a tied weight is stored once, under its first name."""
        seen, tensors = set(), {}
        for name, tensor in self.state_dict().items():
            key = (tensor.data_ptr(), tensor.shape, tensor.dtype)
            if tensor.numel() and key in seen:
                continue
            seen.add(key)
            tensors[name] = tensor.detach().contiguous().cpu()
        return tensors

    def save_pretrained(self, directory: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write config.json and model.safetensors into directory (created if needed). A directory
        that is not empty is refused unless overwrite=True. Returns the directory."""
        from safetensors.torch import save_file

        path = Path(directory)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"save_pretrained: {path} exists and is not a directory")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(f"save_pretrained: {path} is not empty; pass overwrite=True to replace its "
                                  f"{CONFIG_FILE} and {WEIGHTS_FILE}")
        path.mkdir(parents=True, exist_ok=True)
        # The fields of this class's config (a stack inside an LM holds the LM's config).
        names = {f.name for f in dataclasses.fields(self.config_class)}
        config = {k: v for k, v in self.config.to_dict().items() if k in names}
        document = {"model_type": type(self).__name__, "config": config}
        # Each file is written beside its target and renamed over it: an interrupted save leaves
        # the previous file whole.
        partial = path / (WEIGHTS_FILE + ".partial")
        save_file(self.tensors_to_save(), str(partial), metadata={"format": "pt"})
        os.replace(partial, path / WEIGHTS_FILE)
        partial = path / (CONFIG_FILE + ".partial")
        partial.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(partial, path / CONFIG_FILE)
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str | torch.device = "cpu"):
        """The model save_pretrained wrote into directory, on map_location. A missing, unreadable
        or mismatched file raises an error that names the file (and the tensor)."""
        from safetensors import SafetensorError, safe_open

        path = Path(directory)
        config_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
        for file in (config_path, weights_path):
            if not file.is_file():
                raise FileNotFoundError(f"from_pretrained: {file} does not exist")
        try:
            document = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"from_pretrained: {config_path} is not valid JSON: {error}") from error
        if not isinstance(document, dict) or "config" not in document:
            raise ValueError(f"from_pretrained: {config_path} has no 'config' entry")
        if document.get("model_type") != cls.__name__:
            raise ValueError(f"from_pretrained: {config_path} holds a {document.get('model_type')!r}, "
                             f"not a {cls.__name__}")
        try:
            config = cls.config_class.from_dict(document["config"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"from_pretrained: {config_path}: {error}") from error
        model = cls(config)
        expected = model.tensors_to_save()
        targets = model.state_dict()
        try:
            with safe_open(str(weights_path), framework="pt") as weights:
                names = set(weights.keys())
                missing, unexpected = sorted(set(expected) - names), sorted(names - set(expected))
                if missing or unexpected:
                    raise ValueError(f"from_pretrained: {weights_path} does not match {config_path}: "
                                     f"missing tensors {missing}, unexpected tensors {unexpected}")
                with torch.no_grad():
                    for name in expected:
                        tensor = weights.get_tensor(name)
                        if tensor.shape != targets[name].shape:
                            raise ValueError(f"from_pretrained: {weights_path}: tensor {name!r} has shape "
                                             f"{tuple(tensor.shape)}, the config needs {tuple(targets[name].shape)}")
                        targets[name].copy_(tensor)
        except SafetensorError as error:
            raise ValueError(f"from_pretrained: {weights_path} is not a readable safetensors file "
                             f"(truncated or corrupt?): {error}") from error
        return model.to(map_location)

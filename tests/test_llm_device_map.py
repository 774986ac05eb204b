"""load_model's device_map on a tiny random Llama folder: a model dispatched by
accelerate ("auto") or placed by a dict gives the same activations as a plain load;
bfloat16 activations stay close to float32 ones; bad maps are refused before loading."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from tiny_lm import save_tiny_llama  # noqa: E402

from probejax.llm import extract, load_model  # noqa: E402

torch.set_num_threads(1)

N_LAYERS, D = 3, 32
TEXTS = [
    "Paris is in France.",
    "Oslo.",
    "The city of Lima is in Peru, far away.",
    "Bern is in Switzerland!",
]
PER_MODULE = {
    "model.embed_tokens": "cpu",
    "model.rotary_emb": "cpu",
    **{f"model.layers.{i}": torch.device("cpu") for i in range(N_LAYERS)},
    "model.norm": "cpu",
    "lm_head": "cpu",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    save_tiny_llama(path, n_layers=N_LAYERS, d=D, max_positions=64)
    return str(path)


@pytest.fixture(scope="module")
def plain(folder):
    lm = load_model(folder)
    return lm, extract(lm, TEXTS, pooling="mean")


@pytest.mark.parametrize(
    "device_map", ["auto", {"": "cpu"}, PER_MODULE], ids=["auto", "whole", "per-module"]
)
def test_device_map_activations_equal_a_plain_load(folder, plain, device_map):
    lm0, want = plain
    assert lm0.device_map is None
    lm = load_model(folder, device_map=device_map)
    # every module on one device: transformers loads it there without dispatch hooks
    assert json.loads(lm.device_map) == {"": "cpu"}
    assert (lm.n_layers, lm.d_model, lm.max_length, lm.revision) == (
        lm0.n_layers,
        lm0.d_model,
        lm0.max_length,
        lm0.revision,
    )
    assert not lm.model.training and not any(p.requires_grad for p in lm.model.parameters())
    np.testing.assert_array_equal(extract(lm, TEXTS, pooling="mean"), want)
    np.testing.assert_array_equal(extract(lm, TEXTS), extract(lm0, TEXTS))


def test_bfloat16_activations_close_to_float32(folder, plain):
    _, want = plain
    lm = load_model(folder, dtype="bfloat16", device_map={"": "cpu"})
    assert lm.dtype == "bfloat16" and next(lm.model.parameters()).dtype == torch.bfloat16
    got = extract(lm, TEXTS, pooling="mean")
    assert got.dtype == np.float32 and got.shape == want.shape
    # bfloat16 keeps 8 significant bits (relative rounding 2^-8 = 0.4%); three blocks
    # of matmuls over d = 32 compound it to a few percent of each vector's norm at most
    err = np.linalg.norm(got - want, axis=-1) / np.linalg.norm(want, axis=-1)
    assert err.max() < 0.05, err.max()
    assert err.max() > 0  # it did run in bfloat16


@pytest.mark.parametrize(
    "device_map, match",
    [
        ("balanced", "device_map 'balanced' is not valid"),
        ("cuda", "device_map 'cuda' is not valid"),
        ({"": "gpu0"}, r"device_map\[''\] = 'gpu0' is not a device"),
        ({"model.layers.0": -1}, r"device_map\['model.layers.0'\] = -1 is not a device"),
        ({"": None}, r"device_map\[''\] = None is not a device"),
        ({"": True}, r"device_map\[''\] = True is not a device"),
        ({0: "cpu"}, "device_map key 0 is not a module name"),
        ({}, "non-empty dict"),
        ([("", "cpu")], r"got \[\('', 'cpu'\)\]"),
    ],
)
def test_bad_device_map_is_refused_before_loading(tmp_path, device_map, match):
    # the spec does not exist: the map is refused before the model is looked for
    with pytest.raises(ValueError, match=match):
        load_model(str(tmp_path / "no_such_model"), device_map=device_map)


def test_device_and_device_map_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"device='cuda' and device_map='auto': give one"):
        load_model(str(tmp_path / "no_such_model"), device="cuda", device_map="auto")
    with pytest.raises(ValueError, match="give one of them"):
        load_model(str(tmp_path / "no_such_model"), device="cuda:1", device_map={"": 0})

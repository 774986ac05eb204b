r"""Three-class truth data: true, false and *neither* statements, and synthetic bags.

"The Trilemma of Truth in Large Language Models" (Savcisens & Eliassi-Rad 2025, arXiv
2506.23921) adds to true and false statements a third class, statements about entities
that do not exist, which are neither true nor false: a probe of the model's belief
should not call them either. :func:`truth_neither_dataset` builds that from the bundled
``"cities"`` data (``"The city of X is in Y."``, true or with a wrong country) and
made-up cities in made-up countries (``"The city of Vrelnask is in Oskavia."``), with
pronounceable names drawn from syllables by a seeded generator (:func:`fictional_names`)
and kept only when no real city or country of the data has that name.

:func:`synthetic_bags` draws Gaussian bags where only a statement's last tokens carry
its class, the multiple-instance structure sAwMIL is built for, for tests and examples
without a language model.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

TRUTH_LABELS = ("false", "true", "neither")

_ONSETS = tuple("b br d dr f g gr k kr l m n p r s sk st t tr v vr z".split())
_VOWELS = tuple("a e i o u ae ei ou".split())
_CODAS = ("", "", "", *"l n r s sk nd st".split())
_COUNTRY_ENDS = tuple("ia avia onia land mark stan ora eth".split())


@dataclasses.dataclass(frozen=True, eq=False)
class TruthDataset:
    """Statements with three classes (:func:`truth_neither_dataset`).

    - ``texts``: the ``n`` statements.
    - ``labels``: read-only ``int8`` ``(n,)``: 0 false, 1 true, 2 neither.
    - ``label_names``: ``("false", "true", "neither")``.
    - ``groups``: ``{"city": (n,) names}``, the entity each statement is about (a real
      city's true and false statements share it).
    - ``description``: how it was built.
    """

    texts: tuple[str, ...]
    labels: np.ndarray
    label_names: tuple[str, ...] = TRUTH_LABELS
    groups: dict = dataclasses.field(default_factory=dict)
    description: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        """Statements per class name."""
        return {name: int(np.sum(self.labels == k)) for k, name in enumerate(self.label_names)}


def fictional_names(
    rng: np.random.Generator, n: int, *, country: bool = False, avoid=()
) -> list[str]:
    """``n`` distinct made-up, pronounceable names (two or three syllables
    consonant-vowel-coda; countries end in a country-like suffix), none in ``avoid``
    (compared case-insensitively).

    **Arguments:** a numpy ``Generator`` (the names are a function of its state), the
    count, ``country`` for country names, and names to avoid.

    **Returns:** a list of ``n`` capitalised strings.
    """
    banned = {str(a).lower() for a in avoid}
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(200 * n + 1000):
        if len(out) == n:
            break
        k = int(rng.integers(2, 4)) - (1 if country else 0)
        parts = [
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + (_CODAS[rng.integers(len(_CODAS))] if i == k - 1 and not country else "")
            for i in range(k)
        ]
        if country:
            parts.append(_COUNTRY_ENDS[rng.integers(len(_COUNTRY_ENDS))])
        name = "".join(parts).capitalize()
        if name.lower() in banned or name in seen or not 4 <= len(name) <= 12:
            continue
        seen.add(name)
        out.append(name)
    if len(out) < n:
        raise ValueError(
            f"fictional_names: could only make {len(out)} distinct names of the {n} asked."
        )
    return out


def _real_names() -> tuple[list[str], list[str]]:
    from ..llm import load_dataset

    data = load_dataset("cities")
    cities = [str(c) for c in data.groups["city"]]
    countries = [
        t.removeprefix(f"The city of {c} is in ").removesuffix(".").removeprefix("the ")
        for t, c in zip(data.texts, cities, strict=True)
    ]
    return cities, countries


def truth_neither_dataset(seed: int = 0, n_per_class: int = 200) -> TruthDataset:
    """True, false and neither statements, ``n_per_class`` of each (module docstring).

    True and false statements are ``n_per_class`` cities of the bundled ``"cities"``
    data with their true and a wrong country (``load_dataset("cities",
    max_examples=2 * n_per_class, seed=seed)``, which needs the ``llm`` extra); neither
    statements are ``"The city of {city} is in {country}."`` for made-up cities in
    made-up countries. The order is shuffled by ``seed``.

    **Arguments:**

    - ``seed``: non-negative integer; the same seed gives the same statements.
    - ``n_per_class``: statements per class, 2 to 750 (the cities available).

    **Returns:** a :class:`TruthDataset`, labels 0 false, 1 true, 2 neither.
    """
    from ..llm import load_dataset
    from ..llm._datasets import CITIES_COUNT

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(
            f"truth_neither_dataset: seed must be a non-negative integer, got {seed!r}."
        )
    if (
        isinstance(n_per_class, bool)
        or not isinstance(n_per_class, int | np.integer)
        or not 2 <= n_per_class <= CITIES_COUNT
    ):
        raise ValueError(
            f"truth_neither_dataset: n_per_class must be an integer from 2 to {CITIES_COUNT} "
            f"(the bundled cities), got {n_per_class!r}."
        )
    n = int(n_per_class)
    real = load_dataset("cities", max_examples=2 * n, seed=int(seed))
    real_cities, real_countries = _real_names()
    rng = np.random.default_rng([int(seed), 2506])
    avoid = set(real_cities) | set(real_countries)
    cities = fictional_names(rng, n, avoid=avoid)
    countries = fictional_names(rng, max(n // 4, 1), country=True, avoid=avoid | set(cities))
    where = [countries[i] for i in rng.integers(len(countries), size=n)]
    texts = list(real.texts) + [
        f"The city of {c} is in {k}." for c, k in zip(cities, where, strict=True)
    ]
    labels = np.concatenate([np.asarray(real.labels, np.int8), np.full(n, 2, np.int8)])
    city = np.concatenate(
        [np.asarray(real.groups["city"]).astype(object), np.asarray(cities, object)]
    )
    order = rng.permutation(3 * n)
    labels = labels[order]
    labels.flags.writeable = False
    return TruthDataset(
        texts=tuple(texts[i] for i in order),
        labels=labels,
        groups={"city": city[order].astype(str)},
        description=(
            f"{n} true and {n} false 'The city of X is in Y.' statements from the bundled "
            f"cities data (seed {seed}) and {n} about made-up cities in made-up countries "
            "(neither true nor false), shuffled"
        ),
    )


def synthetic_bags(
    key: PRNGKeyArray,
    n_per_class: int,
    *,
    n_classes: int = 3,
    n_tokens: int = 8,
    d: int = 16,
    signal: float = 2.0,
    n_signal: int = 2,
) -> tuple[Float[Array, "n T d"], Bool[Array, "n T"], Int[Array, " n"]]:
    r"""Gaussian bags whose class is carried by their last tokens only.

    Statement :math:`i` of class :math:`k` has a length :math:`\ell_i` uniform in
    ``n_signal..n_tokens`` (right padding, zero past the end); its tokens are
    :math:`x_{it} \sim N(0, I_d)`, and its last ``n_signal`` real tokens get
    :math:`+\,\texttt{signal}\cdot u_k` with :math:`u_0, \dots, u_{K-1}` the first
    coordinate directions. The other tokens say nothing about the class, so a bag's
    mean dilutes the signal and its best token does not.

    **Returns:** ``(X (n, T, d), mask (n, T), labels (n,))``, ``n = n_classes *
    n_per_class``, classes in blocks.
    """
    if not 1 <= n_signal <= n_tokens or n_classes > d or n_classes < 2:
        raise ValueError(
            f"synthetic_bags: need 1 <= n_signal <= n_tokens and 2 <= n_classes <= d, got "
            f"n_signal={n_signal}, n_tokens={n_tokens}, n_classes={n_classes}, d={d}."
        )
    n, T = n_classes * n_per_class, n_tokens
    k_len, k_x = jax.random.split(key)
    labels = jnp.repeat(jnp.arange(n_classes), n_per_class)
    length = jax.random.randint(k_len, (n,), n_signal, T + 1)
    t = jnp.arange(T)
    mask = t[None, :] < length[:, None]
    last = mask & (t[None, :] >= length[:, None] - n_signal)
    X = jax.random.normal(k_x, (n, T, d))
    X = X + signal * last[:, :, None] * jax.nn.one_hot(labels, d)[:, None, :]
    return jnp.where(mask[:, :, None], X, 0.0), mask, labels

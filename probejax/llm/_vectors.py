r"""Steering vectors: one direction per layer, built three ways, applied with a multiplier.

A :class:`SteeringVector` holds :math:`u_\ell \in \mathbb{R}^d` for each steered block
:math:`\ell` (site ``"block_output"`` by default: the residual stream leaving the
block). Inside ``with RowSteering.constant(vec, m, positions=...).attach(model):``
(:class:`~probejax.llm.RowSteering`) every forward pass adds

.. math::  e_{\ell, t} \leftarrow e_{\ell, t} + m\, u_\ell

at every position :math:`t` (:attr:`Positions.ALL`) or only at the last position of
each forward call (:attr:`Positions.LAST`: during cached generation the prompt's last
token, then each generated token, the tokens whose outputs are generated text). Built
from

- contrast pairs (:meth:`SteeringVector.from_pairs`): the mean of differences
  :math:`u_\ell = \frac1n\sum_i (e_\ell(x_i^+) - e_\ell(x_i^-))` at each text's last
  token (CAA, Rimsky et al. 2024, arXiv 2312.06681; the ``steering-vectors`` default);
- class-labelled activations (:meth:`SteeringVector.from_classes`): the mass-mean
  :math:`u_\ell = \mu_\ell^+ - \mu_\ell^-` (Marks & Tegmark, arXiv 2310.06824);
- any fitted probe (:meth:`SteeringVector.from_probes`): its unit concept vector
  (``probe.concept_vector()`` of any estimator in :mod:`probejax.estimators`).

Mean vectors keep their magnitude and probe directions are unit, so equal multipliers
are not comparable across constructions. :meth:`SteeringVector.relative` puts every
direction on one scale: :math:`u_\ell \leftarrow \rho_\ell\, u_\ell/\lVert u_\ell\rVert`
with :math:`\rho_\ell` the layer's median residual norm (:func:`residual_norms`), so a
multiplier :math:`k` pushes by :math:`k\rho_\ell`, a fraction of the typical residual
norm whatever the direction came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ._extract import extract
from ._hooks import hooked


def _as_vector(v: Any, name: str) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().to("cpu").double().numpy()
    a = np.array(v, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a vector of shape (d,), got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite entries.")
    return a


@dataclasses.dataclass(frozen=True)
class SteeringVector:
    """A direction per steered block (``{layer: (d,) float64}``) at one site.

    **Fields:**

    - `directions`: ``{layer: vector}``; the vector's length is the push at multiplier 1.
    - `site`: where each block is read and steered, ``"block_output"`` (default) or any
      other site of :func:`probejax.llm.hooked`.
    - `name`: a label (``"mean of differences"``, ``"mass-mean"``, the estimator...).
    """

    directions: Mapping[int, np.ndarray]
    site: str = "block_output"
    name: str = ""

    def __post_init__(self):
        if not self.directions:
            raise ValueError("directions is empty: give at least one {layer: vector}.")
        dirs = {int(i): _as_vector(v, f"directions[{i}]") for i, v in self.directions.items()}
        sizes = {v.shape[0] for v in dirs.values()}
        if len(sizes) != 1:
            raise ValueError(f"the directions have different sizes {sorted(sizes)}.")
        object.__setattr__(self, "directions", dict(sorted(dirs.items())))

    @property
    def layers(self) -> list[int]:
        return list(self.directions)

    def norms(self) -> dict[int, float]:
        """:math:`\\lVert u_\\ell\\rVert` per layer."""
        return {i: float(np.linalg.norm(v)) for i, v in self.directions.items()}

    def relative(self, scale: Mapping[int, float]) -> SteeringVector:
        r"""The same directions with length ``scale[layer]`` each
        (:math:`u_\ell \leftarrow \rho_\ell u_\ell / \lVert u_\ell\rVert`); with
        :func:`residual_norms` as `scale`, multiplier :math:`k` pushes by :math:`k`
        median residual norms. Raises ``ValueError`` for a zero direction or a layer
        missing from `scale`."""
        out = {}
        for i, v in self.directions.items():
            if i not in scale:
                raise ValueError(f"scale has no entry for layer {i} (has {sorted(scale)}).")
            n = np.linalg.norm(v)
            if n == 0:
                raise ValueError(f"layer {i}: the zero vector has no direction to rescale.")
            out[i] = float(scale[i]) * v / n
        return dataclasses.replace(self, directions=out)

    def unit(self) -> SteeringVector:
        """The directions normalised to length 1."""
        return self.relative(dict.fromkeys(self.directions, 1.0))

    @classmethod
    def from_pairs(
        cls,
        loaded,
        pairs: Sequence[tuple[str, str]],
        layers: Sequence[int],
        *,
        site: str = "block_output",
        batch_size: int = 16,
        name: str = "mean of differences",
    ) -> SteeringVector:
        r"""Mean of differences over contrast pairs, read at each text's last token:
        :math:`u_\ell = \frac1n\sum_i e_\ell(x_i^+) - e_\ell(x_i^-)`.

        **Arguments:** `loaded` (a loaded model), `pairs` (``(positive, negative)``
        texts), `layers`, `site`, `batch_size` (for :func:`probejax.llm.extract`).
        """
        if not pairs:
            raise ValueError("pairs is empty.")
        pos, neg = zip(*pairs, strict=True)
        X = extract(
            loaded, [*pos, *neg], layers=list(layers), site=site, batch_size=batch_size
        ).astype(np.float64)
        n = len(pos)
        diff = (X[:, :n] - X[:, n:]).mean(axis=1)
        return cls(dict(zip([int(i) for i in layers], diff, strict=True)), site, name)

    @classmethod
    def from_classes(
        cls,
        X: Mapping[int, Any],
        y: Any,
        *,
        site: str = "block_output",
        name: str = "mass-mean",
    ) -> SteeringVector:
        r"""Mass-mean :math:`u_\ell = \mu_\ell^+ - \mu_\ell^-` from ``{layer: X (n, d)}``
        and labels `y` (the larger value is the positive class)."""
        y = np.asarray(y)
        classes = np.unique(y)
        if classes.size != 2:
            raise ValueError(f"y must have two classes, got {classes.tolist()}.")
        pos = y == classes[1]
        dirs = {}
        for i, Xi in X.items():
            Xi = np.asarray(Xi, dtype=np.float64)
            if Xi.ndim != 2 or Xi.shape[0] != y.shape[0]:
                raise ValueError(f"X[{i}] has shape {Xi.shape}; expected ({y.shape[0]}, d).")
            dirs[i] = Xi[pos].mean(0) - Xi[~pos].mean(0)
        return cls(dirs, site, name)

    @classmethod
    def from_probes(
        cls, probes: Mapping[int, Any], *, site: str = "block_output", name: str = "probe"
    ) -> SteeringVector:
        """Each probe's unit concept vector (``probe.concept_vector()``), per layer:
        any fitted :class:`probejax.Probe`."""
        return cls({i: np.asarray(p.concept_vector()) for i, p in probes.items()}, site, name)

    @classmethod
    def random(
        cls, seed: int, d: int, layers: Sequence[int], *, site: str = "block_output"
    ) -> SteeringVector:
        """Isotropic random unit directions (the null), one per layer, from
        ``numpy.random.default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        dirs = {int(i): rng.standard_normal(d) for i in layers}
        return cls(dirs, site, "random").unit()


def residual_norms(
    loaded,
    texts: Sequence[str],
    layers: Sequence[int],
    *,
    site: str = "block_output",
    batch_size: int = 16,
) -> dict[int, float]:
    r"""The median residual norm per layer, :math:`\rho_\ell = \operatorname{median}
    \lVert e_{\ell,t}(x)\rVert_2` over every text :math:`x` and every real token
    :math:`t \ge 1` of it (the first token is left out: it is an attention sink whose
    norm is far above the others). Each text is run alone-padded on the right, so
    pads are never counted.

    **Returns:** ``{layer: rho}``.
    """
    layers = [int(i) for i in layers]
    if not texts:
        raise ValueError("texts is empty: the median norm needs some tokens.")
    tok = loaded.tokenizer
    norms: dict[int, list[np.ndarray]] = {i: [] for i in layers}
    mask_now: list[torch.Tensor] = []

    def read(i, h):
        n = h.detach().double().norm(dim=-1)
        norms[i].append(n[mask_now[0]].numpy())

    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        rows = [tok(t).input_ids for t in chunk]
        T = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows])
        att = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
        keep = att.bool().clone()
        keep[:, 0] = False
        mask_now[:] = [keep]
        with torch.no_grad(), hooked(loaded.model, layers, read, site):
            loaded.model(input_ids=ids, attention_mask=att)
    out = {}
    for i in layers:
        vals = np.concatenate(norms[i])
        if vals.size == 0:
            raise ValueError("the texts have no token after the first: nothing to measure.")
        out[i] = float(np.median(vals))
    return out

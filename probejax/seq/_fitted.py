r"""A fitted sequence probe in raw activation coordinates.

The probe was trained on tokens standardised per feature with statistics of the real
training tokens, :math:`\tilde x_t = (x_t - \mu)/\sigma`; :class:`FittedSeqProbe` holds
:math:`(\mu, \sigma)` and the trained module and applies both, so it takes raw
activations ``(n, T, d)`` with a mask ``(n, T)`` (None: every token is real). It has the
interface of :class:`probejax.Probe` (``decision_function``, ``predict_proba``,
``predict``, ``concept_vector``) with the mask as an extra argument, plus per-token
scores and attention maps for interpretation.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..core._probe import Probe, unit
from ._base import SeqProbe


class TokenScaler(eqx.Module):
    """Per-feature :math:`\\mu, \\sigma` of real tokens; ``transform`` zeroes padding."""

    mean: Float[Array, " d"]
    scale: Float[Array, " d"]

    @classmethod
    def fit(cls, X: Float[Array, "n T d"], mask: Bool[Array, "n T"]) -> TokenScaler:
        """Statistics over every real token of ``X`` (:math:`\\sigma` floored at 1e-6
        times its largest value, so constant features do not blow up)."""
        w = mask[..., None].astype(X.dtype)
        n = jnp.maximum(jnp.sum(w), 1.0)
        mu = jnp.sum(X * w, axis=(0, 1)) / n
        var = jnp.sum(((X - mu) * w) ** 2, axis=(0, 1)) / n
        sd = jnp.sqrt(var)
        return cls(mu, jnp.maximum(sd, 1e-6 * jnp.max(sd) + 1e-30))

    @classmethod
    def identity(cls, d: int) -> TokenScaler:
        return cls(jnp.zeros(d), jnp.ones(d))

    def transform(self, X, mask):
        return jnp.where(mask[..., None], (X - self.mean) / self.scale, 0.0)


def _mask_for(X, mask) -> Bool[Array, "n T"]:
    if X.ndim != 3:
        raise ValueError(f"X must be (n, T, d) token activations, got shape {tuple(X.shape)}.")
    if mask is None:
        return jnp.ones(X.shape[:2], bool)
    if tuple(mask.shape) != tuple(X.shape[:2]):
        raise ValueError(
            f"mask has shape {tuple(mask.shape)}, expected {tuple(X.shape[:2])} (the first "
            f"two axes of X)."
        )
    return jnp.asarray(mask, bool)


class FittedSeqProbe(Probe):
    """A trained :class:`SeqProbe` with its token standardisation (see module docstring).

    ``probe`` is one module (no ensemble axis); ``scaler`` a :class:`TokenScaler`.
    """

    probe: SeqProbe
    scaler: TokenScaler

    def _apply(self, method: str, X, mask):
        X = jnp.asarray(X)
        return _apply_jit(self, method, X, _mask_for(X, mask))

    def decision_function(
        self, X: Float[Array, "n T d"], mask: Bool[Array, "n T"] | None = None
    ) -> Float[Array, " n"]:
        """Logits ``(n,)``; positive means the positive class."""
        return self._apply("__call__", X, mask)

    def predict_proba(self, X, mask=None) -> Float[Array, " n"]:
        """:math:`\\sigma(f)`, ``(n,)``."""
        return jax.nn.sigmoid(self.decision_function(X, mask))

    def predict(self, X, mask=None) -> Int[Array, " n"]:
        """1 for the positive class, 0 for the negative."""
        return (self.decision_function(X, mask) > 0).astype(jnp.int32)

    def token_scores(self, X, mask=None) -> Float[Array, "n T"]:
        """Per-token scores ``(n, T)``, zero on padding; ``self.probe.aggregate`` says how
        they make the logit."""
        return self._apply("token_scores", X, mask)

    def attention(self, X, mask=None) -> Float[Array, "n H T"]:
        """Attention maps ``(n, H, T)``, zero on padding."""
        return self._apply("attention", X, mask)

    def concept_vector(self) -> Float[Array, " d"]:
        """For linear read-outs :math:`w^\\top\\tilde x`: the raw-space direction
        :math:`w/\\sigma`, unit norm. Other families raise ``NotImplementedError``."""
        return unit(self.probe.concept_vector() / self.scaler.scale)


@eqx.filter_jit
def _apply_jit(fitted: FittedSeqProbe, method: str, X, mask):
    Xs = fitted.scaler.transform(X, mask)
    return jax.vmap(lambda x, m: getattr(fitted.probe, method)(x, m))(Xs, mask)


def check_sequences(X, mask, y=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate ``(X, mask, y)`` on the host: shapes, finiteness of real tokens, a real
    token in every row, two classes. **Returns** numpy ``(X float32, mask bool, y 0/1)``."""
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"X must be (n, T, d) token activations, got shape {X.shape}.")
    if mask is None:
        mask = np.ones(X.shape[:2], bool)
    mask = np.asarray(mask)
    if mask.shape != X.shape[:2]:
        raise ValueError(
            f"mask has shape {mask.shape}, expected {X.shape[:2]} (X's first two axes)."
        )
    mask = mask.astype(bool)
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise ValueError(
            f"{empty.size} sequence(s) have no real token (mask all False); the first is "
            f"row {int(empty[0])}. Every sequence needs at least one token."
        )
    bad = ~np.isfinite(X) & mask[..., None]
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"X holds {int(bad.sum())} non-finite value(s) on real tokens; the first at {i}."
        )
    X = np.where(mask[..., None], X, 0.0).astype(np.float32)
    if y is None:
        return X, mask, None
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"y must have shape ({X.shape[0]},) (one label per sequence), got {y.shape}."
        )
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError(
            f"y must hold exactly two classes, got {classes.size}: {classes[:10].tolist()}."
        )
    return X, mask, (y == classes[1]).astype(np.float32)

"""Score heads: graph outputs -> one OOD score per frame (higher = more OOD), NumPy only.

One interface for training and runtime (pytorch-ood's Detector API, anomalib's export):

    head = WhitenedKnnHead('features').fit({'features': id_vectors})  # ID data only, offline
    spec, arrays = head.to_spec()                                      # -> bundle.json + .npy
    head = head_from_spec(spec, arrays)                                # on the robot
    scores = head.score(graph_outputs)

Fitted statistics are arrays (mean, Cholesky factor of the precision, memory bank) that travel as
bundle files, so any bundle can be refitted or adapted without touching its graph.  Every head
that measures a Gaussian distance shares one `Whitener` (one Ledoit-Wolf fit, one quadratic
form).  scikit-learn is imported only by `fit`, never at run time.
"""
from __future__ import annotations

import numpy as np


class HeadSpecError(ValueError):
    """A head spec or array that cannot be trusted; the message names the key."""


def _array(arrays: dict, key: str, ndim: int) -> np.ndarray:
    a = arrays.get(key)
    if not isinstance(a, np.ndarray) or a.ndim != ndim or a.size == 0:
        raise HeadSpecError(f"array '{key}' must be a non-empty {ndim}-d array")
    if a.dtype.kind != 'f':
        raise HeadSpecError(f"array '{key}' must be floating point, got {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise HeadSpecError(f"array '{key}' contains NaN or infinite values")
    return a.astype(np.float64, copy=False)


def _name(spec: dict, key: str) -> str:
    v = spec.get(key)
    if not isinstance(v, str) or not v:
        raise HeadSpecError(f"'{key}' must name a graph output, got {v!r}")
    return v


class Whitener:
    """z = (x - mean) L with precision = L L^T, so |z|^2 is the squared Mahalanobis distance.

    Ledoit-Wolf shrinkage: the ID sets are a few thousand frames of up to a few hundred highly
    correlated statistics, where the sample covariance is ill-conditioned.
    """

    def __init__(self, mean: np.ndarray, chol: np.ndarray):
        self.mean, self.chol = mean, chol

    @classmethod
    def fit(cls, x: np.ndarray) -> 'Whitener':
        from sklearn.covariance import LedoitWolf
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f'need at least 2 ID vectors to fit, got shape {x.shape}')
        lw = LedoitWolf().fit(x)
        return cls(lw.location_, np.linalg.cholesky(lw.precision_))

    @classmethod
    def from_arrays(cls, arrays: dict) -> 'Whitener':
        mean, chol = _array(arrays, 'mean', 1), _array(arrays, 'chol', 2)
        d = mean.size
        if chol.shape != (d, d):
            raise HeadSpecError(f"array 'chol' must be {d}x{d} (mean has {d} values), "
                                f'got {chol.shape}')
        # a lower-triangular factor with a positive diagonal <=> a symmetric positive-definite
        # precision (a zeroed or transposed matrix fails here)
        if np.any(np.triu(chol, 1)) or not np.all(np.diag(chol) > 0):
            raise HeadSpecError("array 'chol' must be lower-triangular with a positive diagonal "
                                '(the Cholesky factor of a positive-definite precision)')
        return cls(mean, chol)

    def arrays(self) -> dict:
        return {'mean': self.mean, 'chol': self.chol}

    def pooled(self, x: np.ndarray, n_prior: int) -> 'Whitener':
        """Pool the Gaussian of the prior ID data and of new ID vectors `x` together.

        The prior ID data are n_prior frames, known only by these statistics; pooled are the
        first and second moments.
        """
        from sklearn.covariance import LedoitWolf
        x = np.asarray(x, np.float64).reshape(-1, self.dims)
        lw = LedoitWolf().fit(x)
        prec = self.chol @ self.chol.T
        c_prior = np.linalg.inv(prec)
        n1, n2 = float(n_prior), float(len(x))
        mean = (n1 * self.mean + n2 * lw.location_) / (n1 + n2)
        d1, d2 = self.mean - mean, lw.location_ - mean
        cov = (n1 * (c_prior + np.outer(d1, d1)) + n2 * (lw.covariance_ + np.outer(d2, d2))) \
            / (n1 + n2)
        return Whitener(mean, np.linalg.cholesky(np.linalg.inv(cov)))

    @property
    def dims(self) -> int:
        return self.mean.size

    def whiten(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64).reshape(-1, self.dims) - self.mean) @ self.chol

    def unwhiten(self, z: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular   # offline only (bundle conversion)
        return solve_triangular(self.chol, np.asarray(z, np.float64).T, trans='T',
                                lower=True).T + self.mean

    def sq_distance(self, x: np.ndarray) -> np.ndarray:
        return np.square(self.whiten(x)).sum(axis=1)

    @property
    def precision_diag(self) -> np.ndarray:
        return np.square(self.chol).sum(axis=1)

    @property
    def logdet_precision(self) -> float:
        return float(2.0 * np.log(np.diag(self.chol)).sum())


class ScoreHead:
    # `type` and `input` shadow builtins (noqa A003/A002): public spec keys of bundle files
    type = 'abstract'  # noqa: A003
    inputs: tuple = ()       # graph outputs the head reads
    fitted = False           # has ID statistics (so refit/adapt apply)

    def fit(self, outputs: dict) -> 'ScoreHead':
        """Fit on graph outputs of in-distribution frames only (there is no label argument)."""
        return self

    def score(self, outputs: dict) -> np.ndarray:
        raise NotImplementedError

    def to_spec(self) -> tuple:
        """(JSON-able spec, {name: ndarray}); inverse of `head_from_spec`."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.type


class KLPriorHead(ScoreHead):
    """The paper's score: sum over selected latent dims of KL(N(mu, sigma^2) || N(0, 1))."""

    type = 'kl_divergence'  # noqa: A003

    def __init__(self, mu: str = 'mu', logvar: str = 'logvar', dims=None):
        self.mu, self.logvar = mu, logvar
        self.dims = None if dims is None else np.asarray(dims, np.intp)
        self.inputs = (mu, logvar)

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict) -> 'KLPriorHead':
        dims = spec.get('dims')
        if dims is not None and not (isinstance(dims, list) and dims and all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 100000
                for d in dims)):
            raise HeadSpecError("'dims' must be null or a non-empty list of indices")
        return cls(_name(spec, 'mu'), _name(spec, 'logvar'), dims)

    def score(self, outputs):
        mu = np.asarray(outputs[self.mu], np.float64)
        lv = np.asarray(outputs[self.logvar], np.float64)
        if self.dims is not None:
            mu, lv = mu[:, self.dims], lv[:, self.dims]
        return (0.5 * (np.square(mu) + np.exp(lv) - lv - 1.0)).sum(axis=1)

    def to_spec(self):
        return {'type': self.type, 'mu': self.mu, 'logvar': self.logvar,
                'dims': None if self.dims is None else self.dims.tolist()}, {}

    def describe(self):
        return ('sum over the latent dimensions of KL(N(mu_i, sigma_i^2) || N(0, 1)) '
                "(the paper's score)")


class KLToFittedHead(ScoreHead):
    """KL(N(mu, diag(sigma^2)) || N(m, S)): the frame's latent Gaussian vs the ID posterior.

    Divergence of the frame's latent Gaussian from the ID aggregate posterior N(m, S) instead of
    the prior; with m = 0, S = I it is the prior KL.
    = 0.5 [tr(P diag(sigma^2)) + (mu - m)^T P (mu - m) - k - log det P - sum log sigma^2].
    """

    type = 'kl_to_fitted'  # noqa: A003
    fitted = True

    def __init__(self, mu: str = 'mu', logvar: str = 'logvar', whitener: Whitener | None = None):
        self.mu, self.logvar, self.whitener = mu, logvar, whitener
        self.inputs = (mu, logvar)

    @classmethod
    def from_spec(cls, spec, arrays):
        return cls(_name(spec, 'mu'), _name(spec, 'logvar'), Whitener.from_arrays(arrays))

    def fit(self, outputs):
        self.whitener = Whitener.fit(outputs[self.mu])
        return self

    def score(self, outputs):
        w = self.whitener
        lv = np.asarray(outputs[self.logvar], np.float64).reshape(-1, w.dims)
        return 0.5 * (np.exp(lv) @ w.precision_diag + w.sq_distance(outputs[self.mu])
                      - w.dims - w.logdet_precision - lv.sum(axis=1))

    def to_spec(self):
        return {'type': self.type, 'mu': self.mu, 'logvar': self.logvar}, self.whitener.arrays()

    def describe(self):
        return ('KL(N(mu, sigma^2) || N(m, S)): divergence of the latent Gaussian from the ID '
                'aggregate posterior')


class GaussianHead(ScoreHead):
    """Squared Mahalanobis distance of a graph output to its ID Gaussian."""

    type = 'mahalanobis'  # noqa: A003
    fitted = True

    def __init__(self, input: str, whitener: Whitener | None = None):  # noqa: A002  the spec key
        self.input, self.whitener = input, whitener
        self.inputs = (input,)

    @classmethod
    def from_spec(cls, spec, arrays):
        return cls(_name(spec, 'input'), Whitener.from_arrays(arrays))

    def fit(self, outputs):
        self.whitener = Whitener.fit(outputs[self.input])
        return self

    def score(self, outputs):
        return self.whitener.sq_distance(outputs[self.input])

    def to_spec(self):
        return {'type': self.type, 'input': self.input}, self.whitener.arrays()

    def describe(self):
        return (f'squared Mahalanobis distance (Ledoit-Wolf) of `{self.input}` to its ID '
                f'Gaussian ({self.whitener.dims if self.whitener else "?"}-d)')


class WhitenedKnnHead(ScoreHead):
    """Squared distance to the nearest ID vector of a memory bank, after Ledoit-Wolf whitening.

    A distance to the ID *mean* puts a rare but normal view (a parked truck close by) far in the
    tail; the nearest neighbour finds its training twin.  The bank is kept in feature space (not
    whitened) so that it can be re-whitened and extended (`adapt`).
    """

    type = 'wknn'  # noqa: A003
    fitted = True

    def __init__(self, input: str, whitener: Whitener | None = None,  # noqa: A002  the spec key
                 bank: np.ndarray | None = None, max_bank: int = 10000):
        self.input, self.max_bank = input, int(max_bank)
        self.inputs = (input,)
        self.whitener = whitener
        self._set_bank(bank)

    def _set_bank(self, bank):
        self.bank = bank
        if bank is not None and self.whitener is not None:
            self._z = self.whitener.whiten(bank)
            self._z_t = np.ascontiguousarray(self._z.T)
            self._z_sq = np.square(self._z).sum(axis=1)

    @classmethod
    def from_spec(cls, spec, arrays):
        w = Whitener.from_arrays(arrays)
        bank = _array(arrays, 'bank', 2)
        if bank.shape[1] != w.dims:
            raise HeadSpecError(f"array 'bank' must have {w.dims} columns, got {bank.shape}")
        max_bank = spec.get('max_bank', 10000)
        if not isinstance(max_bank, int) or isinstance(max_bank, bool) or \
                not len(bank) <= max_bank <= 1_000_000:
            raise HeadSpecError(f"'max_bank' must be an integer >= the bank size {len(bank)}")
        return cls(_name(spec, 'input'), w, bank, max_bank)

    def fit(self, outputs):
        x = np.asarray(outputs[self.input], np.float64)
        self.whitener = Whitener.fit(x)
        z = self.whitener.whiten(x)
        keep = greedy_coreset(z, self.max_bank) if len(x) > self.max_bank else np.arange(len(x))
        self._set_bank(x[keep])
        return self

    def extend(self, outputs, resolution_quantile: float = 0.5) -> int:
        """Add new ID vectors (a new place, a new camera) to the memory without forgetting the old.

        Greedy k-center on the whitened vectors, starting from the current bank, until every new
        vector is within the bank's own resolution (the median distance of a bank vector to its
        nearest other bank vector) or the bank is full.  Returns how many joined.
        """
        x = np.asarray(outputs[self.input], np.float64).reshape(-1, self.whitener.dims)
        z = self.whitener.whiten(x)
        room = self.max_bank - len(self.bank)
        if room <= 0 or len(x) == 0:
            return 0
        resolution = np.quantile(np.sqrt(self._nearest_sq(self._z, skip_self=True)),
                                 resolution_quantile)
        nearest = np.sqrt(self._nearest_sq(z))
        keep = greedy_coreset(z, room, initial=nearest, stop_below=resolution)
        self._set_bank(np.concatenate([self.bank, x[keep]]))
        return int(len(keep))

    def _nearest_sq(self, z: np.ndarray, skip_self: bool = False) -> np.ndarray:
        """Squared distance of each whitened vector to its nearest bank vector.

        `skip_self`: `z` is the bank itself, and a vector's own entry does not count.
        """
        out = np.empty(len(z))
        for i in range(0, len(z), 512):   # bounded N x M temporaries
            c = z[i:i + 512]
            d2 = np.square(c).sum(axis=1)[:, None] + self._z_sq[None] - 2.0 * (c @ self._z_t)
            if skip_self:
                d2[np.arange(len(c)), np.arange(i, i + len(c))] = np.inf
            out[i:i + 512] = np.maximum(d2.min(axis=1), 0.0)
        return out

    def score(self, outputs):
        return self._nearest_sq(self.whitener.whiten(outputs[self.input]))

    def to_spec(self):
        # float32 is plenty for feature vectors and halves the bundle
        return ({'type': self.type, 'input': self.input, 'max_bank': self.max_bank},
                {**self.whitener.arrays(), 'bank': self.bank.astype(np.float32)})

    def describe(self):
        return (f'squared distance of the Ledoit-Wolf-whitened `{self.input}` to the nearest of '
                f'{0 if self.bank is None else len(self.bank)} ID vectors (memory bank)')


class GraphOutputHead(ScoreHead):
    """The graph computes the score itself (no fitted statistics outside the graph)."""

    type = 'graph_output'  # noqa: A003

    def __init__(self, output: str):
        self.output = output
        self.inputs = (output,)

    @classmethod
    def from_spec(cls, spec, arrays):
        return cls(_name(spec, 'output'))

    def score(self, outputs):
        return np.asarray(outputs[self.output], np.float64).reshape(-1)

    def to_spec(self):
        return {'type': self.type, 'output': self.output}, {}

    def describe(self):
        return f'graph output `{self.output}`'


def greedy_coreset(z: np.ndarray, budget: int, initial: np.ndarray | None = None,
                   stop_below: float = 0.0) -> np.ndarray:
    """Greedy k-center: repeatedly take the vector farthest from everything taken so far.

    `initial` is each vector's distance to an existing memory (none: start from the first
    vector).  Stops after `budget` picks or when the farthest vector is closer than
    `stop_below`.  Returns the indices taken, in order.
    """
    n = len(z)
    if n == 0 or budget <= 0:
        return np.zeros(0, np.intp)
    z_sq = np.square(z).sum(axis=1)
    if initial is None:
        dist, picks = np.full(n, np.inf), []
        first = 0
    else:
        dist = np.asarray(initial, np.float64).copy()
        picks, first = [], int(np.argmax(dist))
    nxt = first
    while len(picks) < min(budget, n):
        if initial is not None and dist[nxt] < stop_below:
            break
        picks.append(nxt)
        d = np.sqrt(np.maximum(z_sq + z_sq[nxt] - 2.0 * (z @ z[nxt]), 0.0))
        np.minimum(dist, d, out=dist)
        dist[nxt] = 0.0
        nxt = int(np.argmax(dist))
        if initial is None and dist[nxt] <= stop_below:
            break
    return np.asarray(picks, np.intp)


HEADS = {h.type: h for h in (KLPriorHead, KLToFittedHead, GaussianHead, WhitenedKnnHead,
                             GraphOutputHead)}
# Arrays each head type needs (the bundle loader checks that exactly these travel).
HEAD_ARRAYS = {'kl_divergence': (), 'graph_output': (), 'kl_to_fitted': ('mean', 'chol'),
               'mahalanobis': ('mean', 'chol'), 'wknn': ('mean', 'chol', 'bank')}


def head_from_spec(spec: dict, arrays: dict | None = None) -> ScoreHead:
    if not isinstance(spec, dict) or not isinstance(spec.get('type'), str) or \
            spec['type'] not in HEADS:
        raise HeadSpecError(f"'type' must be one of {sorted(HEADS)}, got "
                            f"{spec.get('type') if isinstance(spec, dict) else spec!r}")
    return HEADS[spec['type']].from_spec(spec, arrays or {})


def make_head(kind: str, input: str = 'features', **kwargs) -> ScoreHead:  # noqa: A002
    """Make an unfitted head by type name (the tools' --head choices)."""
    if kind == 'kl_divergence':
        return KLPriorHead(**kwargs)
    if kind == 'kl_to_fitted':
        return KLToFittedHead(**kwargs)
    if kind == 'mahalanobis':
        return GaussianHead(input)
    if kind == 'wknn':
        return WhitenedKnnHead(input, **kwargs)
    raise ValueError(f'unknown head {kind!r} (one of kl_divergence, kl_to_fitted, mahalanobis, '
                     f'wknn)')

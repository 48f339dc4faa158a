"""Distances between two clouds of embeddings: Frechet (Gaussian fit) and a Gaussian KL estimate.

Both fit a Gaussian to each cloud. With a few dozen rollouts and 384-d
embeddings the sample covariance is singular (n << d), so a ridge `lam * I`
is added to both covariances: it makes the fit defined, keeps the KL finite
when every text at a turn is the same within one source, and leaves two
identical clouds at distance exactly 0.

The work is done in the affine span of the pooled points (at most n-1
dimensions, found by an SVD) instead of all d dimensions. Outside that span
both fitted covariances are exactly `lam * I` and the means agree, so the
left-out dimensions add exactly 0 to either distance: the answer is the same
as in full dimension, at a fraction of the cost, which is what makes a
1000-replicate bootstrap per turn affordable. Bootstrap replicates resample
the same points, so they lie in the same span and are computed in the same
coordinates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

#: the ridge on unit-normalised 384-d embeddings: ~1/3 of the per-dimension variance of random unit vectors
DEFAULT_RIDGE = 1e-3


def span_coordinates(points: Array, rtol: float = 1e-9) -> Array:
    """Coordinates of `points` (rows) in an orthonormal basis of their affine span, centred on their mean."""
    centred = points - points.mean(axis=0, keepdims=True)
    if len(points) < 2:
        return np.zeros((len(points), 0))
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    keep = singular > rtol * max(float(singular[0]), 1e-300)
    return centred @ vt[keep].T


def _moments(x: Array, lam: float) -> tuple[Array, Array]:
    mean = x.mean(axis=0)
    k = x.shape[1]
    cov = np.cov(x, rowvar=False, ddof=1).reshape(k, k) if len(x) > 1 else np.zeros((k, k))
    return mean, cov + lam * np.eye(k)


def _sqrt_psd(matrix: Array) -> Array:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(x: Array, y: Array, lam: float = DEFAULT_RIDGE) -> float:
    """||mu_x - mu_y||^2 + Tr(Sx + Sy - 2 (Sx^1/2 Sy Sx^1/2)^1/2), each S ridged by lam (the FID formula)."""
    if x.shape[1] == 0:
        return 0.0
    mx, sx = _moments(x, lam)
    my, sy = _moments(y, lam)
    root = _sqrt_psd(sx)
    cross = np.linalg.eigvalsh(root @ sy @ root)
    value = float(np.sum((mx - my) ** 2) + np.trace(sx) + np.trace(sy) - 2.0 * np.sum(np.sqrt(np.clip(cross, 0, None))))
    return max(value, 0.0)


def gaussian_kl(x: Array, y: Array, lam: float = DEFAULT_RIDGE) -> float:
    """KL(N_x || N_y) in nats between the ridged Gaussian fits of x (e.g. student turns) and y (expert turns).

    KL(P||Q) = 1/2 [tr(Sq^-1 Sp) + (mq-mp)' Sq^-1 (mq-mp) - k + ln det Sq - ln det Sp].
    """
    k = x.shape[1]
    if k == 0:
        return 0.0
    mp, sp = _moments(x, lam)
    mq, sq = _moments(y, lam)
    chol = np.linalg.cholesky(sq)
    solved = np.linalg.solve(chol, np.column_stack([sp, mq - mp]))  # L^-1 [Sp | dm]
    trace_term = float(np.trace(np.linalg.solve(chol.T, solved[:, :k])))
    mahalanobis = float(np.sum(solved[:, k] ** 2))
    logdet_q = 2.0 * float(np.sum(np.log(np.diag(chol))))
    logdet_p = float(np.linalg.slogdet(sp)[1])
    return max(0.5 * (trace_term + mahalanobis - k + logdet_q - logdet_p), 0.0)

"""The saturation model of decode throughput, and its fit.

Decode throughput S (tokens/s) at batch size B saturates as the KV-cache
traffic reaches the memory bandwidth. The paper models it as

    S(B) = S_max * B / (K_m + B)

where S_max is the asymptotic throughput and K_m the batch size at which half
of it is reached. `fit` estimates both by nonlinear least squares
(scipy.optimize.curve_fit) and reports R^2 = 1 - SS_res / SS_tot. The sweep is
fitted once per context length T.
"""

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import curve_fit


def saturation(batch, s_max, k_m):
    batch = np.asarray(batch, dtype=float)
    return s_max * batch / (k_m + batch)


@dataclass(frozen=True)
class Fit:
    s_max: float
    k_m: float
    r2: float
    points: int

    def as_dict(self):
        return asdict(self)


class FitError(ValueError):
    pass


def fit(batches, throughputs):
    """Fits S(B) to (B, S) points; needs at least three distinct positive batch sizes."""
    b = np.asarray(batches, dtype=float)
    s = np.asarray(throughputs, dtype=float)
    if b.shape != s.shape or b.ndim != 1:
        raise FitError(
            f"batches and throughputs must be equal-length 1-D (got {b.shape}, {s.shape})"
        )
    if len(np.unique(b)) < 3:
        raise FitError(f"need at least 3 distinct batch sizes to fit S(B), got {sorted(set(b))}")
    if np.any(b <= 0) or np.any(~np.isfinite(s)) or np.any(s <= 0):
        raise FitError("batch sizes and throughputs must be positive and finite")
    p0 = (float(s.max()) * 1.2, float(np.median(b)))
    (s_max, k_m), _ = curve_fit(saturation, b, s, p0=p0, bounds=([0.0, 0.0], [np.inf, np.inf]))
    residual = s - saturation(b, s_max, k_m)
    total = float(np.sum((s - s.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 0.0
    return Fit(float(s_max), float(k_m), r2, int(len(b)))


def fit_sweep(records):
    """{context: Fit} from records with `batch`, `context` and `value` (tokens/s)."""
    by_context = {}
    for r in records:
        by_context.setdefault(int(r["context"]), []).append((float(r["batch"]), float(r["value"])))
    return {
        context: fit([b for b, _ in points], [s for _, s in points])
        for context, points in sorted(by_context.items())
    }

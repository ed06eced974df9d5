"""Write tests/data/ppi_reference.json: prediction-powered means computed by ``ppi-python``, for
tests/test_ppi.py to compare segfair's :func:`segfair.stats.ppi_means` with when ppi-python is
not installed (CI does not install it: numba and statsmodels are heavy, and it ships a top-level
``tests`` package).

Each case is a uniform labelled sample of a cohort (a trusted score ``Y`` on ``n`` of ``N``
cases, a proxy ``Yhat`` on every case), drawn from a seed and stored as data rounded to 1e-6
(the stored numbers are the inputs: the test needs neither this script's draws nor numpy's
streams to stay the same). The outputs are ppi-python's power-tuned point estimate, its ``λ``
(over the unlabelled cases), its estimate at ``λ = 0`` and ``λ = 1`` and its 95% interval
(``alpha=0.05``, two-sided).

Run by hand with ppi-python installed (``pip install 'segfair[ppi]'``)::

    python tests/ppi_reference.py
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).parent / "data" / "ppi_reference.json"
#: (N, n, proxy noise, shape): scores near 0.8 with sd 0.08; the proxy is the trusted score
#: plus an offset and noise (its regression slope below 1, so λ is not clipped); "dice" draws
#: a skewed, capped score (a Beta near 0.8) where the studentized and the normal interval
#: part more (docs/statistics.md)
CASES = [
    (600, 60, 0.03, "normal"),
    (1000, 100, 0.05, "normal"),
    (1500, 150, 0.08, "normal"),
    (1200, 240, 0.04, "normal"),
    (800, 80, 0.06, "dice"),
]


def draw(seed: int, n_all: int, n_lab: int, noise: float, shape: str) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 19])
    t = rng.normal(0.8, 0.08, n_all) if shape == "normal" else rng.beta(16.0, 4.0, n_all)
    a = np.clip(t + 0.04 + rng.normal(0.0, noise, n_all), 0.0, 1.0)
    labelled = np.zeros(n_all, dtype=bool)
    labelled[rng.choice(n_all, size=n_lab, replace=False)] = True
    return {
        "seed": seed,
        "shape": shape,
        "trusted": [round(float(v), 6) for v in t[labelled]],
        "proxy_labelled": [round(float(v), 6) for v in a[labelled]],
        "proxy_unlabelled": [round(float(v), 6) for v in a[~labelled]],
    }


def main() -> None:
    import ppi_py

    cases = []
    for seed, (n_all, n_lab, noise, shape) in enumerate(CASES):
        case = draw(seed, n_all, n_lab, noise, shape)
        y = np.array(case["trusted"])
        yhat = np.array(case["proxy_labelled"])
        yhat_u = np.array(case["proxy_unlabelled"])
        est = float(np.ravel(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u))[0])
        lo, hi = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.05)
        # λ over the unlabelled cases, as ppi_mean_pointestimate tuned it: its estimate is
        # linear in λ, est(λ) = est(0) + λ (mean_U(Yhat) − mean_L(Yhat))
        est0 = float(np.ravel(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=0))[0])
        lam = (est - est0) / (yhat_u.mean() - yhat.mean())
        est1 = float(np.ravel(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=1))[0])
        # segfair tunes λ by the slope of Y on Yhat over the labelled cases (docs/statistics.md):
        # ppi-python's estimate and interval at that λ, which segfair's must reproduce
        n_lab, n_u = len(y), len(yhat_u)
        slope = float(np.mean((y - y.mean()) * (yhat - yhat.mean())) / np.var(yhat))
        lam_s = float(np.clip(slope * n_u / (n_lab + n_u), 0.0, 1.0))
        est_s = float(np.ravel(ppi_py.ppi_mean_pointestimate(y, yhat, yhat_u, lam=lam_s))[0])
        lo_s, hi_s = ppi_py.ppi_mean_ci(y, yhat, yhat_u, alpha=0.05, lam=lam_s)
        case["at_labelled_slope"] = {
            "lambda_unlabelled": lam_s,
            "estimate": est_s,
            "lower": float(np.ravel(lo_s)[0]),
            "upper": float(np.ravel(hi_s)[0]),
        }
        case["ppi_python"] = {
            "estimate": est,
            "lambda_unlabelled": lam,
            # its estimate at λ = 0 and λ = 1 (it is linear in λ): segfair's, at segfair's own
            # λ, is checked against the line through them
            "estimate_lambda_0": est0,
            "estimate_lambda_1": est1,
            "lower": float(np.ravel(lo)[0]),
            "upper": float(np.ravel(hi)[0]),
        }
        cases.append(case)
    doc = {
        "about": "written by tests/ppi_reference.py; outputs of ppi-python",
        "ppi_python": metadata.version("ppi-python"),
        "alpha": 0.05,
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()

"""Is run B really better than run A? Paired comparisons of finished runs (``mme3dr compare``).

Pure numpy maths (:mod:`paired`, :mod:`sets`) and the run reader (:mod:`runs`); no torch, no renderer.
"""

from __future__ import annotations

from mme3dr.compare.paired import case_sums, holm, paired_bootstrap, sign_flip_pvalue
from mme3dr.compare.runs import CompareError, compare_runs, load_run
from mme3dr.compare.sets import SetSide, set_metric_delta
from mme3dr.compare.text import sentence

__all__ = ["CompareError", "SetSide", "case_sums", "compare_runs", "holm", "load_run", "paired_bootstrap",
           "sentence", "set_metric_delta", "sign_flip_pvalue"]

"""The decision rule (docs/decision.md): pure functions from two lm-eval runs to a verdict.

Stable entry points: `compare(baseline, candidate, policy, *, allow_mismatch=False)` and
`matrix(baseline, {name: run}, policy, sizes)`; models in `quantgate.decision.model`.
"""

from quantgate.decision.comparison import compare
from quantgate.decision.decision_matrix import Matrix, MatrixRow, matrix
from quantgate.decision.model import Comparison, Flips, Policy, TaskComparison, Thresholds, Verdict

__all__ = ["compare", "matrix", "Matrix", "MatrixRow", "Comparison", "Flips", "Policy", "TaskComparison",
           "Thresholds", "Verdict"]

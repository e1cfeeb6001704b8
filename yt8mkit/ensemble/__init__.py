"""Second level: LightGBM stacking of first-level predictions over candidate labels."""

from yt8mkit.ensemble.config import StackConfig
from yt8mkit.ensemble.stack import FoldStack, StackResult, run_stack

__all__ = ["FoldStack", "StackConfig", "StackResult", "run_stack"]

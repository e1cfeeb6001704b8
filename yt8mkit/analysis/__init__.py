"""Error analysis of a run (the paper's section 4): per-label outcome counts, figures
and the HTML report."""

from yt8mkit.analysis.vocabulary import Vocabulary, load_vocabulary

__all__ = ["Vocabulary", "load_vocabulary"]

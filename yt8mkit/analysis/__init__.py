"""Error analysis of a run (the paper's section 4): per-label outcome counts
(``outcomes``), the figures (``figures``) and the HTML report (``report``)."""

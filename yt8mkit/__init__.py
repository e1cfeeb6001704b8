"""yt8mkit: YouTube-8M-format video classification, from TFRecords to a compact distilled model."""

__version__ = "0.1.0"

"""Synthetic YouTube-8M: shards in the real schema, with known clean labels.

The generator imitates what makes the real data hard, so that the paper's effects can
show on a laptop-sized dataset:

- **Labels.** Class frequencies fall off like Zipf's law; classes belong to verticals
  (YouTube-8M's ``Vertical1``) and a video's labels mostly come from one vertical, so
  labels co-occur. Each video has *gold* labels (what is really in it) and *observed*
  labels, the gold ones corrupted like the YouTube annotation system's: a gold label is
  kept with a probability that depends on the class and on how prominent it is in the
  video (so misses are partly predictable, as real ones are), and false positives are
  plausible labels (the video's vertical, popular classes) with no trace in the
  features. The keep rate and the false-positive rate are calibrated so that observed
  labels have the configured precision and recall against the gold ones.
- **Frames.** A video is a sequence of scenes; a frame repeats its scene's features
  plus a small jitter, so the cosine distance between neighbouring frames jumps at
  scene cuts. Each class has a signature direction in rgb and/or audio space. Some
  classes are visible in every scene; *local* ones only in a few, stronger there, so
  that averaging frames dilutes them while a frame-level model can find them.
- **Intros and outros** (``bumper_share``, off by default). Many real videos open with
  a channel's intro and close with its end screen: the first and the last scene of such
  a video show one of a few recurring looks and none of the video's labels. The mean
  over frames mixes them in; a model that weighs frames by their place can leave them
  out.
- **Quantization.** Scene features are quantized with ``quantize`` and the jitter is
  added in code space. The jitter of a scene sums to zero exactly (frame ``t`` adds
  ``e_t`` and subtracts ``e_{t+s}``, a cyclic shift within the scene), so the mean of
  the dequantized frames depends on scene codes only: the video-level path computes it
  without generating frames and still gets the means that the frame-level files of the
  same seed give.

Determinism: every block of ``_BLOCK`` videos draws from its own seeded stream, so the
same config gives byte-identical files, the videos do not depend on the shard size, and
the frame jitter (its own stream) does not change the rest when ``frames`` is off.

Output (written to a temporary directory next to ``out_dir``, renamed when complete)::

    train0000.tfrecord ...      labelled split (Example, or SequenceExample with frames)
    test/test0000.tfrecord ...  test split, when test_videos > 0: unlabelled (no `labels`
                                key) unless label_test;
                                in a subfolder so that ingesting out_dir reads train only
    vocabulary.csv              Index,TrainVideoCount,Name,Vertical1
    gold_labels.npz             per split ("train", "test"): {split}_ids, and gold and
                                observed labels as CSR: {split}_{gold,observed}_{indptr,
                                indices} (test's observed labels are the hidden ones)
    synth.json                  config, calibration, measured stats, class table
"""

from yt8mkit.data.synth.config import (
    GOLD_FILE,
    SUMMARY_FILE,
    TEST_DIR,
    VOCABULARY_FILE,
    SplitStats,
    SynthConfig,
    SynthSummary,
)
from yt8mkit.data.synth.writing import GoldLabels, generate, is_synth_output, read_gold_labels

__all__ = ["GOLD_FILE", "SUMMARY_FILE", "TEST_DIR", "VOCABULARY_FILE", "GoldLabels",
           "SplitStats", "SynthConfig", "SynthSummary", "generate", "is_synth_output",
           "read_gold_labels"]

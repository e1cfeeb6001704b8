"""Data commands: ingest TFRecords into a store, inspect it, assign folds, synthesise data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.progress import TaskID
from rich.table import Table

from yt8mkit.cli import names
from yt8mkit.cli.app import JsonOption, app, print_json, results
from yt8mkit.cli.names import VocabularyOption
from yt8mkit.cli.progress import progress_bar

if TYPE_CHECKING:
    from yt8mkit.data.embeddings import EmbeddingOptions
    from yt8mkit.data.store import Store, StoreMeta
    from yt8mkit.data.vocabulary import Vocabulary


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="TFRecord files, folders or globs.")],
    out: Annotated[Path, typer.Option("--out", help="Store directory to write.")],
    workers: Annotated[int, typer.Option(help="Decoding threads.")] = 2,
    num_classes: Annotated[
        int | None, typer.Option(help="Class count (default: largest label + 1).")
    ] = None,
    skip_corrupt: Annotated[
        bool, typer.Option(help="Skip bad records, count them and list them in meta.json.")
    ] = False,
    no_crc: Annotated[bool, typer.Option("--no-crc", help="Do not check CRCs.")] = False,
    float32: Annotated[
        bool, typer.Option("--float32", help="Store video features as float32 (default float16).")
    ] = False,
    folds: Annotated[int, typer.Option(help="Folds to assign after ingest (0: none).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold assignment.")] = 0,
    id_column: Annotated[str, typer.Option(help="Parquet: the id column.")] = "id",
    labels_column: Annotated[str | None, typer.Option(
        help="Parquet: the labels column, lists of ints or names (default: 'labels' where "
             "there is one, else the videos are unlabelled).")] = None,
    modalities: Annotated[str | None, typer.Option(
        help="Parquet/NumPy: feature columns or arrays, comma-separated (default: all).")
    ] = None,
    level: Annotated[str, typer.Option(
        help="Parquet: auto, video, or frame (flat lists: one row a frame).")] = "auto",
    vocabulary: Annotated[Path | None, typer.Option(
        help="Parquet/NumPy: vocabulary CSV (Index, Name) that label names map through.")
    ] = None,
    ids: Annotated[Path | None, typer.Option(
        help="NumPy: ids file, one a line (default ids.txt beside the arrays).")] = None,
    labels: Annotated[Path | None, typer.Option(
        help="NumPy: labels file, labels.jsonl (a JSON list a line) or labels.txt "
             "(integers a line); default: one of those beside the arrays.")] = None,
) -> None:
    """Ingest TFRecord shards, Parquet or NumPy embeddings into a memory-mapped store
    (resumes an interrupted ingest)."""
    from pydantic import ValidationError

    from yt8mkit.data.embeddings import detect_format
    from yt8mkit.data.folds import write_folds
    from yt8mkit.data.ingest import IngestConfig
    from yt8mkit.data.ingest import ingest as run_ingest
    from yt8mkit.data.sources import resolve_sources
    from yt8mkit.data.store import Store

    config = IngestConfig(
        workers=workers,
        num_classes=num_classes,
        skip_corrupt=skip_corrupt,
        check_crc=not no_crc,
        video_dtype="float32" if float32 else "float16",
    )
    if detect_format(sources) != "tfrecord":
        from yt8mkit.data.embeddings import EmbeddingOptions

        try:  # the options' values: a usage error when they do not validate
            options = EmbeddingOptions(
                workers=workers, num_classes=num_classes, video_dtype=config.video_dtype,
                skip_corrupt=skip_corrupt, id_column=id_column, labels_column=labels_column,
                level=level, vocabulary=None if vocabulary is None else str(vocabulary),
                modalities=None if modalities is None else [
                    m.strip() for m in modalities.split(",") if m.strip()],
                ids_file=None if ids is None else str(ids),
                labels_file=None if labels is None else str(labels))
        except ValidationError as err:
            raise typer.BadParameter(str(err)) from None
        meta = _ingest_embeddings(sources, out, options)
        if folds:
            write_folds(Store(out), folds, seed)
        results.print(
            f"wrote {out}: {meta.num_videos:,} videos, {meta.num_classes:,} classes, "
            f"{meta.level}-level ({', '.join(f'{k}={v}' for k, v in meta.dims.items())}), "
            f"{len(meta.skipped)} rows skipped", markup=False)
        return
    files = resolve_sources(sources)
    with progress_bar() as bar:
        task = bar.add_task("ingest", total=len(files), status="")
        videos = 0

        def advance(path: str, n: int, done: int) -> None:
            nonlocal videos
            videos += n
            bar.update(task, completed=done, status=f"{videos:,} videos")

        meta = run_ingest(sources, out, config, progress=advance)
    if folds:
        write_folds(Store(out), folds, seed)
    results.print(
        f"wrote {out}: {meta.num_videos:,} videos, {meta.num_classes:,} classes, "
        f"{meta.level}-level, {len(meta.skipped)} records skipped"
    )


def _ingest_embeddings(sources: list[str], out: Path, options: EmbeddingOptions
                       ) -> StoreMeta:
    """Parquet or NumPy inputs (yt8mkit/data/embeddings.py), with a progress bar."""
    from yt8mkit.data.embedding_ingest import ingest_embeddings

    with progress_bar() as bar:
        task = bar.add_task("ingest", total=None, status="")
        videos = 0

        def advance(path: str, n: int, done: int) -> None:
            nonlocal videos
            videos += n
            bar.update(task, completed=done, status=f"{videos:,} videos")

        return ingest_embeddings(sources, out, options, progress=advance,
                                 on_units=lambda n: bar.update(task, total=n))


@app.command()
def info(store: Annotated[Path, typer.Argument(help="Store directory.")],
         vocabulary: VocabularyOption = None, as_json: JsonOption = False) -> None:
    """Counts, label statistics and dimensions of a store."""
    from yt8mkit.data.store import Store

    facts = _store_facts(Store(store), names.load(vocabulary))
    if as_json:
        print_json(facts)
    else:
        results.print(_facts_table(str(store), facts))


def _store_facts(s: Store, vocab: Vocabulary | None) -> dict[str, Any]:
    """What `yt8m info` says of a store, as plain values."""
    from yt8mkit.data.folds import folds_info

    meta = s.meta
    facts: dict[str, Any] = {
        "level": meta.level, "videos": meta.num_videos, "classes": meta.num_classes,
        "dims": meta.dims, "video_dtype": meta.video_dtype,
        "unlabelled_videos": meta.num_unlabelled, "skipped_records": len(meta.skipped),
        "folds": folds_info(s)}
    if meta.level == "frame":
        counts = s.frame_counts()
        facts["frames"] = {"total": meta.num_frames, "min": int(counts.min()),
                           "max": int(counts.max())}
    if s.has_labels:
        # Unlabelled (test) videos would pull the mean down without saying anything.
        per_video = np.diff(np.asarray(s.labels_indptr))[np.asarray(s.labelled)]
        class_counts = s.label_counts()
        top = np.argsort(-class_counts)[:5]
        facts["labels"] = {
            "total": meta.num_labels, "per_labelled_video": float(per_video.mean()),
            "classes_seen": int((class_counts > 0).sum()),
            "most_frequent": [{"label": names.label(int(c), vocab), "count": int(class_counts[c])}
                              for c in top]}
    return facts


def _facts_table(title: str, facts: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_row("level", facts["level"])
    table.add_row("videos", f"{facts['videos']:,}")
    table.add_row("classes", f"{facts['classes']:,}")
    table.add_row("dims", ", ".join(f"{k}={v}" for k, v in facts["dims"].items()))
    table.add_row("video feature dtype", facts["video_dtype"])
    if "frames" in facts:
        frames = facts["frames"]
        table.add_row("frames", f"{frames['total']:,} (per video {frames['min']}–{frames['max']})")
    if "labels" in facts:
        labels = facts["labels"]
        table.add_row(
            "labels", f"{labels['total']:,} ({labels['per_labelled_video']:.2f} a labelled video)"
        )
        table.add_row("classes seen", f"{labels['classes_seen']:,}")
        table.add_row("most frequent", ", ".join(f"{t['label']} ({t['count']})"
                                                 for t in labels["most_frequent"]))
    table.add_row("unlabelled videos", f"{facts['unlabelled_videos']:,}")
    table.add_row("skipped records", f"{facts['skipped_records']}")
    folds = facts["folds"]
    table.add_row(
        "folds",
        "none"
        if folds is None
        else f"{folds['num_folds']} (seed {folds['seed']}), sizes {folds['sizes']}",
    )
    return table


@app.command()
def folds(
    store: Annotated[Path, typer.Argument(help="Store directory.")],
    num_folds: Annotated[int, typer.Option("--folds", help="Number of folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """(Re)assign seeded folds, saved with the store."""
    from yt8mkit.data.folds import write_folds
    from yt8mkit.data.store import Store

    result = write_folds(Store(store), num_folds, seed)
    results.print(f"folds: sizes {np.bincount(result).tolist()}")


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (absent or empty).")],
    videos: Annotated[int, typer.Option(help="Labelled (train) videos.")] = 3000,
    classes: Annotated[int, typer.Option(help="Number of classes.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed: same seed, byte-identical files.")] = 0,
    frames: Annotated[
        bool, typer.Option("--frames", help="Frame-level SequenceExamples (else video-level).")
    ] = False,
    test_videos: Annotated[int, typer.Option(help="Videos of the test/ split.")] = 0,
    label_test: Annotated[
        bool, typer.Option("--label-test", help="Keep the labels in test/ (else hidden).")
    ] = False,
    precision: Annotated[float, typer.Option(help="Observed labels' precision vs gold.")] = 0.79,
    recall: Annotated[float, typer.Option(help="Observed labels' recall vs gold.")] = 0.6,
    bumpers: Annotated[float, typer.Option(
        help="Share of videos opening with a channel intro and closing with an outro.")
    ] = 0.0,
    overwrite: Annotated[bool, typer.Option(
        help="Replace a dataset of `yt8m synth` at --out (a folder holding anything else "
             "is refused, never deleted).")] = False,
) -> None:
    """Synthetic YouTube-8M shards in the real schema, with the gold labels beside them."""
    from pydantic import ValidationError

    from yt8mkit.data.synth import SynthConfig, generate

    try:
        config = SynthConfig(
            videos=videos, classes=classes, seed=seed, frames=frames, test_videos=test_videos,
            label_test=label_test, label_precision=precision, label_recall=recall,
            bumper_share=bumpers,
        )
    except ValidationError as err:  # the options' values: a usage error
        raise typer.BadParameter(str(err)) from None
    with progress_bar() as bar:
        task = bar.add_task("synth", total=videos + test_videos, status="")
        summary = generate(
            config, out, progress=lambda n: bar.advance(task, n), overwrite=overwrite
        )
    stats = summary.train
    results.print(
        f"wrote {out}: {stats.videos:,} videos in {stats.shards} shards, "
        f"{stats.observed_labels_per_video:.2f} labels a video (precision "
        f"{stats.label_precision:.2f}, recall {stats.label_recall:.2f} vs gold), "
        f"{summary.seconds:.1f} s"
    )


@app.command()
def centroids(
    store: Annotated[Path, typer.Argument(help="Frame-level store.")],
    k: Annotated[int, typer.Option("--k", help="Number of centroids.")] = 10_000,
    out: Annotated[Path | None, typer.Option(
        help="Output .npy (default STORE/centroids_K.npy).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of sampling and initialisation.")] = 0,
    sample_frames: Annotated[int | None, typer.Option(
        help="Frames sampled for k-means (default: faiss's 256 a centroid, at most 10^6).")
                             ] = None,
    iterations: Annotated[int, typer.Option(help="k-means iterations.")] = 20,
) -> None:
    """k-means (faiss) over the frames of a store: the global centroids representation."""
    from yt8mkit.features.centroids import run_centroids

    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, status="")
            bar.update(tasks[stage], completed=done)

        path = run_centroids(store, k, out, seed, advance, sample_frames=sample_frames,
                             iterations=iterations)
    results.print(f"{k} centroids: {path}", markup=False)


@app.command()
def represent(
    store: Annotated[Path, typer.Argument(help="Frame-level store.")],
    features: Annotated[str, typer.Option(
        help="Representation: a name (statistics) or YAML, e.g. "
             "'{name: dynamics, params: {method: pcp}}'.")],
    out: Annotated[Path, typer.Option(help="Video-level store to write.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Videos a batch.")] = 64,
    max_frames: Annotated[int, typer.Option(min=1, help="First frames of a video used.")] = 300,
    stride: Annotated[int, typer.Option(min=1, help="Every stride-th of those.")] = 1,
) -> None:
    """A fixed frame representation computed once per video, as a video-level store
    (same ids, labels and folds) that video-level models train on."""
    import yaml
    from pydantic import ValidationError

    from yt8mkit.data.store import Store
    from yt8mkit.features.derive import derive_store
    from yt8mkit.features.registry import RepresentationConfig

    try:  # the --features option's value: a usage error when it does not read
        spec = yaml.safe_load(features)
        config = RepresentationConfig.model_validate(
            {"name": spec} if isinstance(spec, str) else spec)
    except (yaml.YAMLError, ValidationError) as err:
        raise typer.BadParameter(str(err), param_hint="--features") from None
    source = Store(store)
    with progress_bar() as bar:
        task = bar.add_task(config.name, total=source.num_videos, status="")
        derived = derive_store(source, config, out, batch_size=batch_size,
                               max_frames=max_frames, stride=stride,
                               progress=lambda n: bar.advance(task, n))
    results.print(f"wrote {out}: {derived.num_videos:,} videos, features {derived.dims}",
                  markup=False)

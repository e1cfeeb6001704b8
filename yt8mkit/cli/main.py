"""The `yt8m` command: parses arguments, calls the parts, prints. No logic of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from yt8mkit.cli.progress import console, progress_bar
from yt8mkit.errors import Yt8mError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="yt8mkit: YouTube-8M-format video classification, from TFRecords to one compact model.",
)


def _fail(err: Exception) -> typer.Exit:
    # Messages quote data ("[0, 3862)"), so no markup; no wrapping, so paths stay whole.
    console.print(f"error: {err}", style="red", markup=False, soft_wrap=True)
    return typer.Exit(code=2)


@app.command()
def ingest(
    sources: Annotated[list[str], typer.Argument(help="TFRecord files, folders or globs.")],
    out: Annotated[Path, typer.Option("--out", help="Store directory to write.")],
    workers: Annotated[int, typer.Option(help="Decoding processes.")] = 2,
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
) -> None:
    """Ingest TFRecord shards into a memory-mapped store (resumes an interrupted ingest)."""
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
    try:
        files = resolve_sources(sources)
        with progress_bar() as bar:
            task = bar.add_task("ingest", total=len(files), status="")
            videos = 0

            def advance(path: str, n: int, done: int) -> None:
                nonlocal videos
                videos += n
                bar.update(task, completed=done, status=f"{videos:,} videos")

            meta = run_ingest(files, out, config, progress=advance)
        if folds:
            write_folds(Store(out), folds, seed)
    except Yt8mError as err:
        raise _fail(err) from None
    console.print(
        f"wrote {out}: {meta.num_videos:,} videos, {meta.num_classes:,} classes, "
        f"{meta.level}-level, {len(meta.skipped)} records skipped"
    )


@app.command()
def info(store: Annotated[Path, typer.Argument(help="Store directory.")]) -> None:
    """Counts, label statistics and dimensions of a store."""
    from yt8mkit.data.folds import folds_info
    from yt8mkit.data.store import Store

    try:
        s = Store(store)
    except Yt8mError as err:
        raise _fail(err) from None
    meta = s.meta
    table = Table(title=str(store), show_header=False)
    table.add_row("level", meta.level)
    table.add_row("videos", f"{meta.num_videos:,}")
    table.add_row("classes", f"{meta.num_classes:,}")
    table.add_row("dims", ", ".join(f"{k}={v}" for k, v in meta.dims.items()))
    table.add_row("video feature dtype", meta.video_dtype)
    if meta.level == "frame":
        counts = s.frame_counts()
        table.add_row("frames", f"{meta.num_frames:,} (per video {counts.min()}–{counts.max()})")
    if s.has_labels:
        per_video = np.diff(np.asarray(s.labels_indptr))
        class_counts = s.label_counts()
        table.add_row("labels", f"{meta.num_labels:,} ({per_video.mean():.2f} a video)")
        table.add_row("classes seen", f"{int((class_counts > 0).sum()):,}")
        top = np.argsort(-class_counts)[:5]
        table.add_row("most frequent", ", ".join(f"{c} ({class_counts[c]})" for c in top))
    table.add_row("unlabelled videos", f"{meta.num_unlabelled:,}")
    table.add_row("skipped records", f"{len(meta.skipped)}")
    folds = folds_info(s)
    table.add_row(
        "folds",
        "none"
        if folds is None
        else f"{folds['num_folds']} (seed {folds['seed']}), sizes {folds['sizes']}",
    )
    console.print(table)


@app.command()
def folds(
    store: Annotated[Path, typer.Argument(help="Store directory.")],
    num_folds: Annotated[int, typer.Option("--folds", help="Number of folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """(Re)assign seeded folds, saved with the store."""
    from yt8mkit.data.folds import write_folds
    from yt8mkit.data.store import Store

    try:
        result = write_folds(Store(store), num_folds, seed)
    except (Yt8mError, ValueError) as err:
        raise _fail(err) from None
    console.print(f"folds: sizes {np.bincount(result).tolist()}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""Shared fixtures: where the real data lies, and the rule for tests that need it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEO_2018 = SHARED_DATA / "yt8m-2018-video"
SMOKE = VIDEO_2018 / "smoke"
FRAME_FORMAT = SHARED_DATA / "yt8m-frame-format"


def require_shared(path: Path) -> Path:
    """Skip with a reason in a user's clone without ../shared; in CI the data is there
    and a missing path is a failure, never a silent skip."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"real data not present at {path} (a clone without ../shared)")
    return path


@pytest.fixture(autouse=True)
def _release_writer_locks() -> object:
    """Run directories stay locked until their writer's process ends: in this one
    long-lived process, until the test that wrote them ends."""
    yield
    from yt8mkit.locks import release_all

    release_all()


@pytest.fixture
def smoke_dir() -> Path:
    return require_shared(SMOKE)


@pytest.fixture
def frame_format_dir() -> Path:
    return require_shared(FRAME_FORMAT)


def build_synthetic_store(root: Path, **synth: object) -> tuple[Path, Path | None]:
    """Synthetic TFRecords under ``root`` ingested into ``root/store`` (and the test split
    into ``root/test_store`` when asked for): the small data of the training tests."""
    from yt8mkit.data.folds import write_folds
    from yt8mkit.data.ingest import IngestConfig, ingest
    from yt8mkit.data.store import Store
    from yt8mkit.data.synth import TEST_DIR, SynthConfig, generate

    config = SynthConfig.model_validate(synth)
    generate(config, root / "synth")
    ingest([root / "synth"], root / "store", IngestConfig(workers=1))
    store = Store(root / "store")
    write_folds(store, 5, 0)
    test_path = None
    if config.test_videos:
        test_path = root / "test_store"
        ingest([root / "synth" / TEST_DIR], test_path,
               IngestConfig(workers=1, num_classes=store.num_classes))
    return root / "store", test_path


@pytest.fixture(scope="session")
def small_video_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """500 labelled videos of 20 classes with narrow features, plus 100 labelled test ones."""
    store, test = build_synthetic_store(
        tmp_path_factory.mktemp("small_video"), videos=500, classes=20, seed=3, rgb_dim=48,
        audio_dim=16, test_videos=100, label_test=True,
    )
    assert test is not None
    return store, test

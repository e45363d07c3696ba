"""The Ray engine on a real local Ray: the same predictions, errors and bytes as the local one."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from mnist_mlops.scoring.job import score
from mnist_mlops.scoring.parts import KILL_AFTER_ENV

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed")
pytestmark = pytest.mark.slow  # starting Ray takes seconds


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """One real Ray instance for the session, two CPUs, as on a CI runner."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_arrays_score_the_same_on_ray(tmp_path, local_ray, score_model, pixels_npy) -> None:
    on_ray = score(str(score_model), pixels_npy, tmp_path / "ray.parquet", "ray", part_size=128)
    local = score(str(score_model), pixels_npy, tmp_path / "local.parquet", part_size=128)
    assert (on_ray.scored, on_ray.engine, on_ray.digest) == (300, "ray", local.digest)
    assert (tmp_path / "ray.parquet").read_bytes() == (tmp_path / "local.parquet").read_bytes()


def test_images_and_their_errors_are_the_same_on_ray(
    tmp_path, local_ray, score_model, bad_folder
) -> None:
    folder, _ = bad_folder
    on_ray = score(str(score_model), folder, tmp_path / "ray.csv", "ray", part_size=5)
    local = score(str(score_model), folder, tmp_path / "local.csv", workers=2, part_size=5)
    assert (on_ray.scored, on_ray.failed) == (local.scored, local.failed) == (12, 4)
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    ray_errors = (tmp_path / "ray.errors.csv").read_bytes()
    assert ray_errors == (tmp_path / "local.errors.csv").read_bytes()


def test_ray_resumes_a_killed_local_run(
    tmp_path, local_ray, score_cli, score_model, pixels_npy
) -> None:
    args = (str(score_model), str(pixels_npy), "out.parquet", "--part-size", "64", "--no-track")
    killed = score_cli(*args, cwd=tmp_path, env={KILL_AFTER_ENV: "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = score(str(score_model), pixels_npy, tmp_path / "out.parquet", "ray", part_size=64)
    assert (resumed.resumed, resumed.scored) == (128, 300)
    score(str(score_model), pixels_npy, tmp_path / "clean.parquet", part_size=64)
    assert (tmp_path / "out.parquet").read_bytes() == (tmp_path / "clean.parquet").read_bytes()

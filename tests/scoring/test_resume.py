"""A killed scoring run, rerun: nothing lost, nothing scored twice, the same bytes.

The kill is a real SIGKILL, sent by the run to itself right after it has written a
given number of parts (``MNIST_SCORE_KILL_AFTER_PARTS``): the test picks the moment,
not a timer, so it behaves the same on a slow or busy machine.
"""

from __future__ import annotations

import signal

import pyarrow.parquet as pq
import pytest

from mnist_mlops.scoring.parts import KILL_AFTER_ENV


@pytest.mark.parametrize("kind", ["npy", "images"])
def test_a_killed_run_resumes_to_the_identical_output(
    tmp_path, score_cli, score_model, pixels_npy, bad_folder, kind
) -> None:
    source, part_size, parts, n = (
        (pixels_npy, "64", 5, 300) if kind == "npy" else (bad_folder[0], "3", 6, 16)
    )
    args = (str(score_model), str(source))
    options = ("--part-size", part_size, "--no-track", "--workers", "2")
    clean = score_cli(*args, "clean.parquet", *options, cwd=tmp_path)
    assert clean.returncode in (0, 1), clean.stderr

    killed = score_cli(*args, "out.parquet", *options, cwd=tmp_path, env={KILL_AFTER_ENV: "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "out.parquet").exists()  # no half-written output
    folder = tmp_path / ".out.parquet.parts"
    done = sorted(p.name for p in folder.glob("part-*.arrow"))
    assert done == ["part-000000.arrow", "part-000001.arrow"]
    before = {name: (folder / name).stat().st_mtime_ns for name in done}

    # Killed again after one more part: the two done parts were not rewritten.
    again = score_cli(*args, "out.parquet", *options, cwd=tmp_path, env={KILL_AFTER_ENV: "1"})
    assert again.returncode == -signal.SIGKILL, again.stderr
    assert "resuming: 2 of" in again.stderr
    assert {name: (folder / name).stat().st_mtime_ns for name in done} == before
    assert len(list(folder.glob("part-*.arrow"))) == 3

    resumed = score_cli(*args, "out.parquet", *options, cwd=tmp_path)
    assert resumed.returncode == clean.returncode, resumed.stderr
    assert f"resuming: 3 of {parts} parts already scored" in resumed.stderr
    assert "of them resumed" in resumed.stdout
    assert (tmp_path / "out.parquet").read_bytes() == (tmp_path / "clean.parquet").read_bytes()
    ids = pq.read_table(tmp_path / "out.parquet").column(0).to_pylist()
    assert len(ids) == len(set(ids))  # nothing twice
    if kind == "npy":
        assert ids == list(range(n))
    else:
        errors = (tmp_path / "out.errors.csv").read_bytes()
        assert errors == (tmp_path / "clean.errors.csv").read_bytes()
        assert len(ids) + errors.count(b"\n") - 1 == n  # every file scored or listed, once
    assert not folder.exists()


def test_a_changed_input_is_not_resumed(tmp_path, score_cli, score_model, pixels) -> None:
    import numpy as np

    np.save(tmp_path / "in.npy", pixels)
    options = ("--part-size", "64", "--no-track")
    killed = score_cli(
        str(score_model), "in.npy", "out.csv", *options, cwd=tmp_path, env={KILL_AFTER_ENV: "2"}
    )
    assert killed.returncode == -signal.SIGKILL
    np.save(tmp_path / "in.npy", pixels[::-1])  # same size, different content and time
    rerun = score_cli(str(score_model), "in.npy", "out.csv", *options, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "discarding parts of a different job" in rerun.stderr
    fresh = score_cli(str(score_model), "in.npy", "fresh.csv", *options, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "fresh.csv").read_bytes()

"""The corrections dataset: split by request id only, never in both parts, the same bytes for
the same corrections, empty parts when there are none, and training sees the weight."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest

from mnist_mlops.core.errors import DataFormatError
from mnist_mlops.corrections.dataset import PARTS, CorrectionSet, load_part, part_path, save_part
from mnist_mlops.corrections.export import export_corrections, holdout_share, split_corrections
from mnist_mlops.train.extra_digits import extra_training_digits


@dataclass(frozen=True)
class Fix:
    request_id: str
    digit: int
    pixels: np.ndarray
    predicted: int
    time: datetime = datetime(2026, 1, 5, tzinfo=timezone.utc)


def fixes(n: int, seed: int = 0) -> list[Fix]:
    rng = np.random.default_rng(seed)
    return [
        Fix(f"{i:032x}", int(rng.integers(10)), rng.integers(0, 256, (28, 28), np.uint8), 3)
        for i in range(n)
    ]


def test_the_split_follows_the_hash_of_the_request_id_alone() -> None:
    many = fixes(400)
    sets, summary = split_corrections(many, 0.3)
    held = set(sets["holdout"].request_id)
    trained = set(sets["train"].request_id)
    assert not held & trained and len(held) + len(trained) == 400
    assert held == {f.request_id for f in many if holdout_share(f.request_id) < 0.3}
    assert 0.2 < len(held) / 400 < 0.4  # the hash spreads ids evenly
    # More corrections later never move an old one to the other part.
    later, _ = split_corrections(many + fixes(600)[400:], 0.3)
    assert held <= set(later["holdout"].request_id)
    assert trained <= set(later["train"].request_id)
    assert summary.parts == {"train": len(trained), "holdout": len(held)}


def test_images_and_digits_stay_together() -> None:
    many = fixes(50)
    sets, _ = split_corrections(many, 0.5)
    by_id = {f.request_id: f for f in many}
    for part in PARTS:
        for x, y, rid in zip(sets[part].x, sets[part].y, sets[part].request_id):
            assert np.array_equal(x, by_id[rid].pixels) and y == by_id[rid].digit


def test_conflicting_corrections_are_dropped_duplicates_kept_once() -> None:
    base = fixes(3)
    twice = Fix(base[0].request_id, base[0].digit, base[0].pixels, 3)
    other = Fix(base[1].request_id, (base[1].digit + 1) % 10, base[1].pixels, 3)
    sets, summary = split_corrections([*base, twice, other], 0.5, no_input=4)
    ids = [*sets["train"].request_id, *sets["holdout"].request_id]
    assert sorted(ids) == sorted([base[0].request_id, base[2].request_id])
    assert summary.conflicting == 1 and summary.no_input == 4
    assert "dropped 1 conflicting, 0 repeated images, 4 without a logged input" in summary.line()


def test_an_image_sent_again_is_kept_once_and_never_in_both_parts() -> None:
    image = fixes(1)[0]
    ids = [f"{i:032x}" for i in range(1000, 1040)]  # new ids, as each resend gets
    held = [i for i in ids if holdout_share(i) < 0.3]
    trained = [i for i in ids if holdout_share(i) >= 0.3]
    assert held and trained  # the same image's requests fall on both sides
    resent = [Fix(i, image.digit, image.pixels.copy(), 3) for i in ids]
    others = fixes(20, seed=1)
    sets, summary = split_corrections([*resent, *others], 0.3)
    copies = {part: sum(np.array_equal(x, image.pixels) for x in sets[part].x) for part in PARTS}
    assert copies == {"train": 0, "holdout": 1}  # held out: training never sees it
    assert summary.repeated == len(ids) - 1
    assert summary.parts["train"] + summary.parts["holdout"] == 1 + len(others)
    # Resent with two different digits: nobody can say which is right.
    flipped = [Fix(f"{i:032x}", (image.digit + 1) % 10, image.pixels, 3) for i in range(3)]
    sets, summary = split_corrections([*resent, *flipped], 0.3)
    assert summary.conflicting == len(ids) + 3 and len(sets["train"]) + len(sets["holdout"]) == 0


def test_the_same_corrections_give_the_same_bytes(tmp_path) -> None:
    many = fixes(30)
    export_corrections(many, tmp_path / "a", 0.3)
    export_corrections(list(reversed(many)), tmp_path / "b", 0.3)
    for part in PARTS:
        a, b = part_path(tmp_path / "a", part), part_path(tmp_path / "b", part)
        assert a.read_bytes() == b.read_bytes()
    back = load_part(tmp_path / "a", "train")
    assert back.x.dtype == np.uint8 and back.x.shape[1:] == (28, 28)


def test_no_corrections_write_empty_parts_that_load(tmp_path) -> None:
    summary = export_corrections([], tmp_path, 0.3)
    assert summary.parts == {"train": 0, "holdout": 0}
    for part in PARTS:
        assert part_path(tmp_path, part).exists()
        assert len(load_part(tmp_path, part)) == 0
    assert len(load_part(tmp_path / "missing", "train")) == 0


def test_a_broken_part_is_a_clear_error(tmp_path) -> None:
    part_path(tmp_path, "train").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="pipeline.corrections"):
        load_part(tmp_path, "train")
    bad = CorrectionSet(np.zeros((1, 28, 28), np.uint8), np.array([12]), np.array(["x"]))
    save_part(tmp_path, "holdout", bad)
    with pytest.raises(DataFormatError, match="outside 0..9"):
        load_part(tmp_path, "holdout")


def test_training_sees_each_train_correction_weight_times(tmp_path) -> None:
    export_corrections(fixes(40), tmp_path, 0.3)
    train = load_part(tmp_path, "train")
    x, y = extra_training_digits(None, tmp_path, 5)
    assert len(y) == 5 * len(train) and np.bincount(y, minlength=10).sum() == len(y)
    assert np.array_equal(x[:5], np.repeat(train.x[:1], 5, axis=0))
    assert extra_training_digits(None, tmp_path, 0) is None
    assert extra_training_digits(None, None, 5) is None
    held = set(load_part(tmp_path, "holdout").request_id)
    assert held and not held & set(train.request_id)

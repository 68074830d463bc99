"""The split plan: R splits × K folds, disjoint parts, reproducible from the master seed."""

from __future__ import annotations

import numpy as np
import pytest

from distributed_pz.models.ensemble import load_plan
from distributed_pz.train.plan import NO_TEST_FOLD, make_plan

IDS = np.arange(5000, 5103, dtype=np.int64)  # 103 rows: folds of unequal size


@pytest.fixture
def plan():
    return make_plan(IDS, n_splits=3, n_folds=5, val_fraction=0.2, seed=7)


def test_every_row_in_exactly_one_test_fold_per_split(plan):
    for r in range(plan.n_splits):
        members = [m for m in plan.members if m.split == r]
        counts = np.zeros(plan.n_rows, int)
        for m in members:
            counts[plan.test_rows(m)] += 1
        assert np.all(counts == 1)
        sizes = [len(plan.test_rows(m)) for m in members]
        assert max(sizes) - min(sizes) <= 1


def test_member_parts_are_disjoint_and_cover_the_sample(plan):
    for m in plan.members:
        train, val, test = plan.train_rows(m), plan.validation_rows(m), plan.test_rows(m)
        assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
        assert len(train) + len(val) + len(test) == plan.n_rows
        training_part = np.flatnonzero(plan.test_fold[m.split] != m.fold)
        assert set(val) <= set(training_part)
        assert len(val) == round(0.2 * len(training_part))


def test_members_ids_and_seeds(plan):
    members = plan.members
    assert len(members) == 15
    assert [m.member_id for m in members] == sorted(m.member_id for m in members)
    assert members[7].member_id == "s01_f2" and plan.member("s01_f2") == members[7]
    assert len({m.seed for m in members}) == 15
    with pytest.raises(KeyError):
        plan.member("s09_f0")


def test_reproducible_from_master_seed(plan):
    again = make_plan(IDS, n_splits=3, n_folds=5, val_fraction=0.2, seed=7)
    other = make_plan(IDS, n_splits=3, n_folds=5, val_fraction=0.2, seed=8)
    assert np.array_equal(plan.test_fold, again.test_fold)
    assert np.array_equal(plan.validation, again.validation)
    assert np.array_equal(plan.member_seeds, again.member_seeds)
    assert not np.array_equal(plan.test_fold, other.test_fold)
    assert not np.array_equal(plan.test_fold[0], plan.test_fold[1])  # splits differ


def test_no_validation(plan):
    plain = make_plan(IDS, n_splits=1, n_folds=2, val_fraction=0.0)
    assert all(len(plain.validation_rows(m)) == 0 for m in plain.members)


def test_save_load_round_trip(plan, tmp_path):
    plan.save(tmp_path)
    back = load_plan(tmp_path)
    for name in ("test_fold", "validation", "member_seeds", "object_id"):
        assert np.array_equal(getattr(plan, name), getattr(back, name))
    assert (back.n_folds, back.val_fraction, back.seed) == (5, 0.2, 7)
    assert back.members == plan.members


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_folds": 0}, "1 fold"),
        ({"n_folds": 1, "val_fraction": 0.0}, "validation fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"n_splits": 0}, "1 split"),
    ],
)
def test_rejects_bad_plans(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_plan(IDS, **kwargs)


def test_one_fold_trains_on_everything_but_validation_and_tests_on_nothing():
    plan = make_plan(IDS, n_splits=3, n_folds=1, val_fraction=0.1, seed=1)
    assert len(plan.members) == 3 and (plan.test_fold == NO_TEST_FOLD).all()
    for member in plan.members:
        assert plan.test_rows(member).size == 0
        train, val = plan.train_rows(member), plan.validation_rows(member)
        assert np.intersect1d(train, val).size == 0 and train.size + val.size == plan.n_rows
        assert val.size == round(0.1 * plan.n_rows)


def test_rejects_too_few_rows():
    with pytest.raises(ValueError, match="cannot fill"):
        make_plan(IDS[:3], n_folds=5)


def test_with_enough_tiles_whole_tiles_are_left_out():
    tiles = np.repeat([0, 1, 2, 3, 4], [30, 10, 25, 15, 20])
    plan = make_plan(np.arange(100), n_splits=3, n_folds=2, seed=2, groups=tiles)
    for split in range(3):
        for tile in range(5):
            assert len(set(plan.test_fold[split, tiles == tile])) == 1  # a tile is in one fold
        sizes = np.bincount(plan.test_fold[split], minlength=2)
        assert abs(sizes[0] - sizes[1]) <= 30  # dealt to the emptier fold: roughly balanced
    for spec in plan.members:
        assert not set(tiles[plan.test_rows(spec)]) & set(tiles[plan.train_rows(spec)])
    assert plan.leaves_groups_out
    one_tile = make_plan(np.arange(100), n_splits=1, n_folds=2, seed=2, groups=np.zeros(100))
    assert np.array_equal(
        one_tile.test_fold, make_plan(np.arange(100), n_splits=1, n_folds=2, seed=2).test_fold
    )


def test_the_plan_keeps_its_groups_on_disk(tmp_path):
    tiles = np.repeat([0, 1, 2], [40, 30, 30])
    make_plan(np.arange(100), n_splits=2, n_folds=3, seed=4, groups=tiles).save(tmp_path)
    back = load_plan(tmp_path)
    assert np.array_equal(back.groups, tiles) and back.leaves_groups_out
    assert not make_plan(np.arange(100), n_splits=1, n_folds=2, groups=np.zeros(100)).leaves_groups_out
    assert make_plan(np.arange(100), n_splits=1, n_folds=2).groups is None


def test_the_calibration_share_is_held_out_of_every_member_and_kept_on_disk(tmp_path):
    plan = make_plan(np.arange(200), n_splits=2, n_folds=2, val_fraction=0.1, seed=5, calibration_share=0.2)
    share = plan.calibration_rows()
    assert share.size == 40 and np.array_equal(share, np.flatnonzero(plan.calibration))
    for m in plan.members:
        assert (
            not np.isin(share, plan.train_rows(m)).any() and not np.isin(share, plan.validation_rows(m)).any()
        )
        assert (
            plan.train_rows(m).size + plan.validation_rows(m).size
            == 100 - np.isin(share, np.flatnonzero(plan.test_fold[m.split] != m.fold)).sum()
        )
    plain = make_plan(np.arange(200), n_splits=2, n_folds=2, val_fraction=0.1, seed=5)
    assert np.array_equal(plan.test_fold, plain.test_fold)  # its rows keep their test folds
    assert plain.calibration is None and plain.calibration_rows().size == 0
    plan.save(tmp_path)
    assert np.array_equal(load_plan(tmp_path).calibration, plan.calibration)
    with pytest.raises(ValueError, match="folds > 1"):
        make_plan(np.arange(200), n_folds=1, calibration_share=0.2)
    with pytest.raises(ValueError, match="calibration_share"):
        make_plan(np.arange(200), n_folds=2, calibration_share=0.6)

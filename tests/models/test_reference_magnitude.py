"""DEEPZ's reference-magnitude option: the extra input, its zero point, jitter, bundles, training."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from distributed_pz.catalog import Flag
from distributed_pz.models.bundle import BUNDLE_FILE, load_bundle
from distributed_pz.models.features import InputSpec
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats, model_inputs, raw_features
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.models.registry import config_from_dict, config_to_dict, model_config
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.config import parse_overrides
from distributed_pz.train.member import TrainConfig, train_member
from distributed_pz.train.vmapped import MemberJob, train_stacked
from tests.fixtures import learnable_tile, tiny_config

torch.set_num_threads(1)
I_BAND = 3  # index of the reference band i among the KiDS+VIKING bands


def spec(use_exposures: bool, reference_magnitude: bool = True) -> InputSpec:
    return tiny_config(
        "deepz", use_exposures=use_exposures, reference_magnitude=reference_magnitude
    ).input_spec()


def catalog(tile: TileArrays, input_spec: InputSpec, **augment) -> torch.Tensor:
    return raw_features(input_spec, batch_tensors(tile, input_spec), **augment)["catalog"]


def coadd_magnitude(tile: TileArrays, band: int) -> np.ndarray:
    """Magnitude of the inverse-variance coadd of a band's exposures, in float64."""
    flux = tile.arrays["flux_exp"][:, band].astype(np.float64)
    weight = np.where(np.isfinite(flux), tile.arrays["flux_exp_err"][:, band].astype(np.float64) ** -2, 0.0)
    coadd = np.nansum(weight * np.nan_to_num(flux), axis=1) / weight.sum(axis=1)
    return tile.zeropoint(tile.bands[band]) - 2.5 * np.log10(coadd)


def with_zeropoint(tile: TileArrays, zeropoint: float) -> TileArrays:
    """The same photometry stored with another zero point (fluxes rescaled, magnitudes unchanged)."""
    scale = 10.0 ** (-0.4 * (tile.zeropoint(tile.bands[0]) - zeropoint))
    arrays = {**tile.arrays, **{k: tile.arrays[k] * np.float32(scale) for k in ("flux_exp", "flux_exp_err")}}
    return TileArrays(arrays, tile.bands, tile.image_bands, (zeropoint,) * len(tile.bands))


@pytest.mark.parametrize("use_exposures", [False, True])
def test_the_extra_value_is_the_reference_magnitude(use_exposures):
    tile = learnable_tile(50)
    plain, with_mag = spec(use_exposures, False), spec(use_exposures)
    assert with_mag.n_catalog == plain.n_catalog + 1 == len(tile.bands)
    values = catalog(tile, with_mag)
    assert values.shape == (50, plain.n_catalog + 1)
    torch.testing.assert_close(values[:, :-1], catalog(tile, plain))  # the ratios as before
    expected = coadd_magnitude(tile, I_BAND) if use_exposures else tile.arrays["mag"][:, I_BAND]
    np.testing.assert_allclose(values[:, -1].numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("use_exposures", [False, True])
def test_another_zeropoint_convention_gives_the_same_features(use_exposures):
    tile = learnable_tile(50)
    moved = with_zeropoint(tile, 23.5)
    torch.testing.assert_close(catalog(moved, spec(use_exposures)), catalog(tile, spec(use_exposures)))


@pytest.mark.parametrize("use_exposures", [False, True])
def test_zeropoint_jitter_moves_the_reference_magnitude(use_exposures):
    tile = learnable_tile(400)
    sigma = 0.1
    jitter = ((sigma,) * len(tile.bands), ())
    moved = catalog(
        tile, spec(use_exposures), zeropoint_jitter=jitter, generator=torch.Generator().manual_seed(0)
    )
    shift = (moved[:, -1] - catalog(tile, spec(use_exposures))[:, -1]).numpy()
    assert 0.8 * sigma < shift.std() < 1.2 * sigma and abs(shift.mean()) < 0.3 * sigma


def test_a_missing_reference_flux_is_masked_and_flagged():
    tile = learnable_tile(40)
    tile.arrays["mag"][0, I_BAND] = np.nan
    input_spec = spec(use_exposures=False)
    batch = batch_tensors(tile, input_spec)
    stats = fit_feature_stats(input_spec, batch)
    assert len(stats.catalog_center) == input_spec.n_catalog
    assert stats.catalog_center[-1] == pytest.approx(np.nanmedian(tile.arrays["mag"][:, I_BAND]), abs=1e-4)
    raw = raw_features(input_spec, batch)
    assert raw["flags"][0] & Flag.NO_REFERENCE and torch.isnan(raw["catalog"][0, -1])
    inputs = model_inputs(input_spec, raw, stats)["catalog"]
    f = input_spec.n_catalog
    assert inputs[0, f - 1] == 0 and inputs[0, 2 * f - 1] == 1  # value filled, mask set
    assert torch.isfinite(inputs).all() and not inputs[1:, 2 * f - 1].any()


def test_only_flux_ratios_take_a_reference_magnitude():
    with pytest.raises(ValueError, match="flux_ratio"):
        InputSpec(catalog="mag_colour", bands=("g", "r"), reference_magnitude=True)


def test_model_set_true_turns_it_on_and_a_string_is_refused():
    assert model_config("deepz", **parse_overrides(["reference_magnitude=true"])).reference_magnitude is True
    with pytest.raises(TypeError, match="true or false"):
        model_config("deepz", **parse_overrides(["reference_magnitude=True"]))  # not JSON: the string "True"


def test_configs_without_the_option_describe_themselves_as_before():
    plain = model_config("deepz")
    assert "reference_magnitude" not in config_to_dict(plain)  # older bundles keep their content hash
    assert config_from_dict(config_to_dict(plain)) == plain
    on = dataclasses.replace(plain, reference_magnitude=True)
    assert config_to_dict(on)["reference_magnitude"] is True
    assert config_from_dict(config_to_dict(on)) == on


def test_trained_members_with_the_option_predict_identically_after_reload(tmp_path):
    tile = learnable_tile(200, seed=1)
    config = tiny_config("deepz", reference_magnitude=True)
    tc = TrainConfig(epochs=2, batch_size=32, patience=None)
    results = [train_member(config, tile, seed, train_config=tc) for seed in (0, 1)]
    assert all(len(r.history) == 2 and np.isfinite(r.history[-1].val_loss) for r in results)
    for k, result in enumerate(results):
        result.bundle.save(tmp_path / str(k))
    assert json.loads((tmp_path / "0" / BUNDLE_FILE).read_text())["config"]["reference_magnitude"] is True
    loaded = [load_bundle(tmp_path / str(k)) for k in range(2)]
    assert all(b.input_spec.n_catalog == len(tile.bands) for b in loaded)
    before = EnsemblePredictor([r.bundle for r in results])
    after = EnsemblePredictor(loaded)
    assert [g for g, stacked in after._groups if stacked is not None] == [[0, 1]]  # the folded path
    expected, got = before(tile), after(tile)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    singles = [EnsemblePredictor([b])(tile)["pdf_means"] for b in loaded]
    np.testing.assert_allclose(got["pdf_means"], np.concatenate(singles, axis=1), rtol=1e-5, atol=1e-6)


def test_stacked_training_takes_the_larger_input():
    config = tiny_config("deepz", reference_magnitude=True)
    tile = learnable_tile(120, seed=2)
    tc = TrainConfig(epochs=1, batch_size=32, patience=None)
    results = train_stacked(config, [MemberJob(tile, 0), MemberJob(tile, 1)], train_config=tc)
    assert all(np.isfinite(r.history[0].val_loss) for r in results)
    assert all(r.bundle.model.encoder[0][0].in_features == 2 * len(tile.bands) for r in results)

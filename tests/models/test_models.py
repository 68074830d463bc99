"""Every registered model with tiny inputs: shapes, finiteness, gradients; registry; paper structure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from distributed_pz.bands import KIDS_VIKING, SDSS, BandSet
from distributed_pz.models import (
    DeepZ,
    GaZNet,
    build_model,
    config_from_dict,
    config_to_dict,
    create_model,
    list_models,
    model_config,
)
from tests.fixtures import tiny_config

torch.set_num_threads(1)
EXPECTED = {"gaznet_i4", "gaznet_c4", "gaznet_c9", "gaznet_1", "gaznet_c9i4", "gaznet_1_mdn", "deepz"}


def tiny_inputs(model, batch=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    spec = model.input_spec
    inputs = {}
    if spec.catalog != "none":
        values = torch.randn(batch, spec.n_catalog, generator=gen)
        mask = (torch.rand(batch, spec.n_catalog, generator=gen) < 0.2).float()
        inputs["catalog"] = torch.cat([values * (1 - mask), mask], dim=1)
    if spec.image_bands:
        inputs["image"] = torch.randn(batch, len(spec.image_bands), 40, 40, generator=gen)
    return inputs


def test_registry_lists_every_variant():
    assert EXPECTED <= set(list_models())
    with pytest.raises(KeyError, match="unknown model"):
        create_model("gaznet_9000")


@pytest.mark.parametrize("classify", [False, True])
@pytest.mark.parametrize("name", list_models())
def test_forward_shapes_finite_and_every_parameter_gets_a_gradient(name, classify):
    torch.manual_seed(0)
    model = build_model(tiny_config(name, classify=classify))
    inputs = tiny_inputs(model)
    out = model(inputs)
    k = model.config.n_components
    if model.has_pdf:
        assert {k_: tuple(out[k_].shape) for k_ in ("logits", "means", "sigmas")} == {
            k_: (4, k) for k_ in ("logits", "means", "sigmas")
        }
    else:
        assert out["z"].shape == (4,)
    if classify:
        assert out["class_logits"].shape == (4, 3)
    if name == "deepz":
        assert out["reconstruction"].shape == (4, model.input_spec.n_catalog)
    assert all(torch.isfinite(v).all() for v in out.values())
    sum(v.float().pow(2).mean() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_forward_is_head_of_features_in_eval_mode(name):
    model = build_model(tiny_config(name, classify=True)).eval()
    inputs = tiny_inputs(model, batch=3)
    with torch.no_grad():
        full = model(inputs)
        split = model.forward_head(model.forward_features(inputs))
    for key, value in split.items():
        torch.testing.assert_close(full[key], value)


@pytest.mark.parametrize("name", list_models())
def test_config_round_trips_through_json_dict(name):
    config = model_config(name, classify=True)
    assert config_from_dict(config_to_dict(config)) == config


def test_overrides_replace_fields_and_lists_become_tuples():
    model = create_model("gaznet_c9", catalog_widths=[8] * 8, dropout=0.1)
    assert model.config.catalog_widths == (8,) * 8 and model.config.dropout == 0.1
    with pytest.raises(TypeError):
        create_model("gaznet_c9", no_such_field=1)


def count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def test_gaznet_structure_follows_the_paper():
    i4 = create_model("gaznet_i4")
    convs = [count(block, nn.Conv2d) for block in i4.image_path if isinstance(block, nn.Sequential)]
    assert convs == [2, 2, 3, 3]
    assert count(i4.neck, nn.Linear) + 1 == 3  # three fully connected layers incl. the output
    c9 = create_model("gaznet_c9")
    assert count(c9.catalog_path, nn.Linear) == 8 and count(c9.neck, nn.Linear) == 0
    assert c9.input_spec.n_catalog == 9 + 8  # nine magnitudes, eight colours
    assert create_model("gaznet_c4").input_spec.n_catalog == 4 + 3
    g1 = create_model("gaznet_1")
    assert g1.config.image_bands == ("r",) and len(g1.config.bands) == 9
    assert count(g1.neck, nn.Linear) + 1 == 5  # five fully connected layers after the concatenation
    assert create_model("gaznet_c9i4").config.image_bands == ("u", "g", "r", "i")
    assert create_model("gaznet_1_mdn").has_pdf and not g1.has_pdf
    assert isinstance(g1, GaZNet) and g1.config.huber_delta == 1e-3


def test_deepz_structure_follows_the_paper():
    model = create_model("deepz")
    assert isinstance(model, DeepZ)
    linear = [m for m in model.encoder.modules() if isinstance(m, nn.Linear)]
    assert (
        len(linear) == 10
        and all(m.out_features == 250 for m in linear[:-1])
        and linear[-1].out_features == 10
    )
    assert count(model.decoder, nn.Linear) == 10
    assert count(model.photoz, nn.Linear) + 1 == 10  # the MDN output layer is the tenth
    assert count(model.encoder, nn.BatchNorm1d) == 9
    ae_dropout = [m.p for m in model.encoder.modules() if isinstance(m, nn.Dropout)]
    assert ae_dropout == [0.02] * 7  # none after the last three linear layers
    assert {m.p for m in model.photoz.modules() if isinstance(m, nn.Dropout)} == {0.01}
    assert model.head.n_components == 10
    assert model.input_spec.n_catalog == 8  # nine fluxes over the i band, i itself left out


def test_variants_name_their_bands_by_role_in_the_band_set():
    assert model_config("gaznet_c9").bands == KIDS_VIKING.bands  # the default band set
    assert model_config("gaznet_c9", SDSS).bands == SDSS.bands == model_config("deepz", "sdss").bands
    assert model_config("gaznet_c4").bands == model_config("gaznet_i4").image_bands == KIDS_VIKING.image_bands
    assert model_config("gaznet_1", SDSS, bands=["g", "r"]).bands == ("g", "r")  # overrides win
    with pytest.raises(ValueError, match="reference band"):
        model_config("deepz", BandSet("grz", ("g", "r", "z")))
    assert model_config("deepz", BandSet("grz", ("g", "r", "z")), reference_band="r").reference_band == "r"


def test_extra_loss_is_the_model_s_own():
    deepz = build_model(tiny_config("deepz"))
    inputs = tiny_inputs(deepz)
    assert deepz.extra_loss(inputs, deepz(inputs)).ndim == 0  # the reconstruction error
    gaznet = build_model(tiny_config("gaznet_c9"))
    inputs = tiny_inputs(gaznet)
    assert gaznet.extra_loss(inputs, gaznet(inputs)) is None

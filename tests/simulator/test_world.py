"""The World artifact: validation, hashing, save/load without refitting, the cached
default World, and what the MovieLens World is made of."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

import shopgym.simulator.build as build
import shopgym.simulator.models as models
import shopgym.simulator.models.training as training
from shopgym.simulator.build import WorldConfig, build_world, default_world, resolve_world, save_atomically
from shopgym.simulator.calibration import position_click_rates
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.interactions import embedded_ratings_path, file_sha256, load_ratings
from shopgym.simulator.models import FitConfig, MatrixFactorization, build_model
from shopgym.simulator.world import FORMAT_VERSION, TENSOR_NAMES, Calibration, World

from .helpers import sub_catalogue

TINY_MF = FitConfig(model="bpr", dim=4, epochs=1, batch_size=4096, patience=1)
TINY_WORLD = WorldConfig(learned_features_epochs=1)  # the learned GMF too: one epoch
FLOAT_TENSORS = [name for name in TENSOR_NAMES if name not in ("catalogue", "test_shopper")]
MF_PARAMETERS = ["user_embedding", "item_embedding", "user_bias", "item_bias", "global_bias"]


class RefitError(AssertionError):
    """Raised by the patched fit_model: a load must never refit."""


def forbid_refit(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise RefitError("fit_model was called while loading a World")

    monkeypatch.setattr(build, "fit_model", refuse)
    monkeypatch.setattr(models, "fit_model", refuse)
    monkeypatch.setattr(training, "fit_model", refuse)


def with_model_parameter(world: World, name: str, change) -> World:
    """``world`` with a copy of its model whose parameter ``name`` is ``change(value)``."""
    model = copy.deepcopy(world.model)
    with torch.no_grad():
        getattr(model, name).copy_(change(getattr(model, name).clone()))
    return replace(world, model=model)


def assert_same_world(a: World, b: World) -> None:
    assert a.model_name == b.model_name
    assert type(a.model) is type(b.model)
    assert a.model.hyperparameters() == b.model.hyperparameters()
    left_state, right_state = a.model.state_dict(), b.model.state_dict()
    assert left_state.keys() == right_state.keys()
    for name in left_state:
        assert torch.equal(left_state[name], right_state[name]), name
    for name in TENSOR_NAMES:
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype, name
        assert torch.equal(left, right), name
    assert a.utility_shift == b.utility_shift
    assert a.utility_scale == b.utility_scale
    assert a.calibration == b.calibration
    assert a.category_names == b.category_names
    assert a.card == b.card
    assert a.hash == b.hash


# ----------------------------------------------------------------------------- save / load
def test_save_load_round_trip(synthetic, tmp_path, monkeypatch):
    folder = synthetic.save(tmp_path / "world")
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "tensors.pt"]
    card = json.loads((folder / "card.json").read_text())
    assert card["world_hash"] == synthetic.hash
    assert card["ground_truth"]["calibration"]["beta"] == synthetic.calibration.beta
    assert card["ground_truth"]["format_version"] == FORMAT_VERSION == 3
    assert card["ground_truth"]["model"] == {
        "name": "bpr",
        "num_users": 200,
        "num_items": 40,
        "hyperparameters": {"dim": 4},
    }
    assert card["name"] == "synthetic"
    tensors = torch.load(folder / "tensors.pt", weights_only=True)
    assert set(tensors) == {*TENSOR_NAMES, *(f"model.{name}" for name in MF_PARAMETERS)}

    forbid_refit(monkeypatch)
    loaded = World.load(folder)
    assert_same_world(loaded, synthetic)
    # Saving the loaded World again gives the same files' content.
    again = loaded.save(tmp_path / "again")
    assert (again / "card.json").read_text() == (folder / "card.json").read_text()


def test_tampered_tensors_give_hash_mismatch(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    tensors = torch.load(folder / "tensors.pt", weights_only=True)
    tensors["model.item_bias"][3] += 0.5
    torch.save(tensors, folder / "tensors.pt")
    with pytest.raises(DataError, match="hash mismatch") as info:
        World.load(folder)
    assert str(folder) in str(info.value)


def test_tampered_ground_truth_in_card_gives_hash_mismatch(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    card = json.loads((folder / "card.json").read_text())
    card["ground_truth"]["calibration"]["no_click_utility"] += 1.0
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="hash mismatch"):
        World.load(folder)


def test_a_card_without_its_hash_is_refused(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    card = json.loads((folder / "card.json").read_text())
    del card["world_hash"]
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="hash mismatch"):
        World.load(folder)


def test_provenance_edits_do_not_change_the_hash(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    card = json.loads((folder / "card.json").read_text())
    card["note"] = "provenance is not ground truth"
    (folder / "card.json").write_text(json.dumps(card))
    loaded = World.load(folder)
    assert loaded.hash == synthetic.hash
    assert loaded.card["note"] == "provenance is not ground truth"


@pytest.mark.parametrize("missing", ["card.json", "tensors.pt"])
def test_missing_file_in_world_folder(synthetic, tmp_path, missing):
    folder = synthetic.save(tmp_path / "world")
    (folder / missing).unlink()
    with pytest.raises(DataError, match=f"{missing} is missing") as info:
        World.load(folder)
    assert str(folder) in str(info.value)


def test_loading_a_folder_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="not a World folder"):
        World.load(tmp_path / "nothing")


def test_missing_tensor_in_tensors_file(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    tensors = torch.load(folder / "tensors.pt", weights_only=True)
    del tensors["item_price"]
    torch.save(tensors, folder / "tensors.pt")
    with pytest.raises(DataError, match=r"missing tensors \['item_price'\]"):
        World.load(folder)


def test_missing_model_parameter_in_tensors_file(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    tensors = torch.load(folder / "tensors.pt", weights_only=True)
    del tensors["model.item_embedding"]
    torch.save(tensors, folder / "tensors.pt")
    with pytest.raises(DataError, match="malformed World") as info:
        World.load(folder)
    assert "item_embedding" in str(info.value) and str(folder) in str(info.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"name": "svd"}, "unknown model 'svd'"),
        ({"hyperparameters": {"dim": 8}}, "malformed World"),  # parameters of another shape
        ({"name": "gmf"}, "malformed World"),  # another architecture, other parameters
    ],
)
def test_card_with_a_wrong_model_spec(synthetic, tmp_path, edit, message):
    folder = synthetic.save(tmp_path / "world")
    card = json.loads((folder / "card.json").read_text())
    card["ground_truth"]["model"].update(edit)
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match=message):
        World.load(folder)


@pytest.mark.parametrize("edit", ["drop", "version"])
def test_card_without_supported_ground_truth(synthetic, tmp_path, edit):
    folder = synthetic.save(tmp_path / "world")
    card = json.loads((folder / "card.json").read_text())
    if edit == "drop":
        del card["ground_truth"]
    else:
        card["ground_truth"]["format_version"] = 99
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="format version"):
        World.load(folder)


def test_card_that_is_not_json(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    (folder / "card.json").write_text("{ not json")
    with pytest.raises(DataError, match="cannot read World"):
        World.load(folder)


def test_truncated_tensors_file(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    data = (folder / "tensors.pt").read_bytes()
    (folder / "tensors.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read World"):
        World.load(folder)


def test_garbage_tensors_file(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    (folder / "tensors.pt").write_bytes(b"garbage, not a torch file")
    with pytest.raises(DataError, match="cannot read World"):
        World.load(folder)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("name", FLOAT_TENSORS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_tensor_is_rejected(synthetic, name, bad):
    tensor = getattr(synthetic, name).clone()
    tensor.view(-1)[0] = bad
    with pytest.raises(DataError, match=name):
        replace(synthetic, **{name: tensor})


@pytest.mark.parametrize("name", MF_PARAMETERS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_model_parameter_is_rejected(synthetic, name, bad):
    def spoil(value):
        value.view(-1)[0] = bad
        return value

    with pytest.raises(DataError, match=name):
        with_model_parameter(synthetic, name, spoil)


@pytest.mark.parametrize("name", ["item_category", "item_price", "item_popularity", "test_shopper"])
def test_wrong_shape_is_rejected(synthetic, name):
    tensor = getattr(synthetic, name)
    grown = torch.cat([tensor, tensor[:1]])  # one row too many
    with pytest.raises(DataError, match=f"{name} has shape"):
        replace(synthetic, **{name: grown})


def test_catalogue_fixes_the_number_of_items(synthetic):
    # One World item more than the attribute tensors describe.
    with pytest.raises(DataError, match="has shape"):
        replace(synthetic, catalogue=torch.cat([synthetic.catalogue, synthetic.catalogue[:1]]))


@pytest.mark.parametrize("index", [-1, 40])
def test_catalogue_must_index_the_models_items(synthetic, index):
    catalogue = synthetic.catalogue.clone()
    catalogue[3] = index
    with pytest.raises(DataError, match="catalogue must index the model's 40 items"):
        replace(synthetic, catalogue=catalogue)


@pytest.mark.parametrize(("name", "dtype"), [("catalogue", torch.int32), ("test_shopper", torch.long)])
def test_index_tensors_need_their_dtype(synthetic, name, dtype):
    with pytest.raises(DataError, match=f"{name} must be a torch.int64|{name} must be a torch.bool"):
        replace(synthetic, **{name: getattr(synthetic, name).to(dtype)})


def test_model_with_other_shoppers_is_rejected(synthetic):
    model = build_model("bpr", synthetic.num_shoppers + 1, 40, {"dim": 4})
    with pytest.raises(DataError, match="test_shopper has shape"):
        replace(synthetic, model=model)


def test_model_must_be_of_the_named_kind(synthetic):
    with pytest.raises(DataError, match="is not a 'gmf' model"):
        replace(synthetic, model_name="gmf")
    with pytest.raises(DataError, match="is not a 'svd' model"):
        replace(synthetic, model_name="svd")
    # bpr and mf share the MF architecture.
    assert replace(synthetic, model_name="mf").model_name == "mf"


def test_the_model_is_frozen(synthetic):
    assert not synthetic.model.training
    assert not any(parameter.requires_grad for parameter in synthetic.model.parameters())


def test_category_names_must_match_columns(synthetic):
    with pytest.raises(DataError, match="item_category"):
        replace(synthetic, category_names=(*synthetic.category_names, "extra"))


def test_prices_must_be_positive(synthetic):
    price = synthetic.item_price.clone()
    price[5] = 0.0
    with pytest.raises(DataError, match="item_price"):
        replace(synthetic, item_price=price)


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_utility_scale_must_be_positive_and_finite(synthetic, scale):
    with pytest.raises(DataError, match="utility_scale"):
        replace(synthetic, utility_scale=scale)


def test_utility_shift_must_be_finite(synthetic):
    with pytest.raises(DataError, match="utility_shift"):
        replace(synthetic, utility_shift=math.nan)


# ----------------------------------------------------------------------------- hash
def perturbed(tensor: torch.Tensor) -> torch.Tensor:
    changed = tensor.clone()
    if changed.dtype == torch.bool:
        changed[0] = ~changed[0]
    elif changed.dtype == torch.long:  # the catalogue: another valid model item
        changed[0] = changed[1]
    else:
        changed.view(-1)[0] += 0.25
    return changed


@pytest.mark.parametrize("name", TENSOR_NAMES)
def test_hash_changes_with_every_tensor(synthetic, name):
    changed = replace(synthetic, **{name: perturbed(getattr(synthetic, name))})
    assert changed.hash != synthetic.hash


@pytest.mark.parametrize("name", MF_PARAMETERS)
def test_hash_changes_with_every_model_parameter(synthetic, name):
    assert with_model_parameter(synthetic, name, perturbed).hash != synthetic.hash


def test_hash_changes_with_the_model_kind(synthetic):
    # Same parameters, another objective's name: another ground truth on record.
    assert replace(synthetic, model_name="mf").hash != synthetic.hash


@pytest.mark.parametrize(
    "change",
    [
        {"calibration": Calibration(beta=3.0)},
        {"utility_shift": 0.125},
        {"utility_scale": 2.5},
        {"category_names": ("a", "b", "c", "d")},
    ],
    ids=["calibration", "utility_shift", "utility_scale", "category_names"],
)
def test_hash_changes_with_the_ground_truth_constants(synthetic, change):
    assert replace(synthetic, **change).hash != synthetic.hash


@pytest.mark.parametrize("field", ["beta", "no_click_utility", "position_logits"])
def test_hash_changes_with_each_calibration_constant(synthetic, field):
    value = getattr(synthetic.calibration, field)
    changed = (*value[:-1], value[-1] + 0.01) if field == "position_logits" else value + 0.01
    calibration = replace(synthetic.calibration, **{field: changed})
    assert replace(synthetic, calibration=calibration).hash != synthetic.hash


def test_hash_is_a_pure_function_of_the_content(synthetic):
    duplicate = replace(
        synthetic,
        model=copy.deepcopy(synthetic.model),
        **{name: getattr(synthetic, name).clone() for name in TENSOR_NAMES},
        card={"something": "else"},
    )
    assert duplicate.hash == synthetic.hash
    assert len(synthetic.hash) == 16
    int(synthetic.hash, 16)


# ----------------------------------------------------------------------------- content
def test_shopper_split(synthetic):
    train = synthetic.shopper_indices("train")
    test = synthetic.shopper_indices("test")
    everyone = synthetic.shopper_indices("all")
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == everyone.tolist()
    assert everyone.tolist() == list(range(synthetic.num_shoppers))
    assert len(test) == round(WorldConfig().test_fraction * synthetic.num_shoppers)
    assert bool(synthetic.test_shopper[test].all())
    assert not bool(synthetic.test_shopper[train].any())


def test_shopper_split_rejects_unknown_name(synthetic):
    with pytest.raises(ConfigError, match="'validation'"):
        synthetic.shopper_indices("validation")


def test_synthetic_world_shape_and_standardised_utilities(synthetic):
    assert synthetic.num_shoppers == 200
    assert synthetic.num_items == 40
    assert synthetic.num_categories == 4
    assert synthetic.model_name == "bpr" and isinstance(synthetic.model, MatrixFactorization)
    assert synthetic.model.user_embedding.shape == (200, 4)
    assert torch.equal(synthetic.catalogue, torch.arange(40))  # every model item is for sale
    assert torch.equal(synthetic.item_category.sum(1), torch.ones(40))  # one category each
    users = torch.arange(synthetic.num_shoppers)
    items = torch.arange(synthetic.num_items).expand(len(users), -1)
    utilities = synthetic.utilities(users, items)
    assert utilities.shape == (200, 40)
    assert float(utilities.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(utilities.std()) == pytest.approx(1.0, abs=1e-4)
    model = synthetic.model
    raw = model.user_embedding @ model.item_embedding.T + model.item_bias
    assert torch.allclose(utilities * synthetic.utility_scale + synthetic.utility_shift, raw, atol=1e-4)
    assert not bool(model.user_bias.any()) and float(model.global_bias) == 0.0


def test_utilities_go_through_the_catalogue(synthetic):
    """World item i is the model's item catalogue[i]: a World selling a subset of the
    model's items, in another order, scores each of them as the model does."""
    keep = torch.tensor([7, 3, 30, 12, 0, 25])
    world = sub_catalogue(synthetic, keep)
    assert world.num_items == 6
    users = torch.tensor([0, 5, 199])
    items = torch.tensor([[0, 1, 2], [5, 4, 3], [1, 1, 0]])
    expected = synthetic.utilities(users, keep[items])
    assert torch.equal(world.utilities(users, items), expected)
    assert torch.equal(world.item_representation(), synthetic.item_representation()[keep])


def test_to_the_same_device_is_the_same_world(synthetic):
    assert synthetic.to("cpu") is synthetic
    assert synthetic.to(torch.device("cpu")) is synthetic


@pytest.mark.gpu
def test_to_another_device_copies_the_model(synthetic):
    moved = synthetic.to("cuda")
    assert moved.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in moved.model.parameters())
    assert all(p.device.type == "cpu" for p in synthetic.model.parameters())  # never moved in place
    assert moved.hash == synthetic.hash
    users = torch.arange(10)
    items = torch.arange(5).expand(10, -1)
    torch.testing.assert_close(
        moved.utilities(users.cuda(), items.cuda()).cpu(), synthetic.utilities(users, items)
    )


def test_synthetic_world_is_reproducible(synthetic):
    assert resolve_world("synthetic").hash == synthetic.hash


def test_resolve_world(synthetic, tmp_path):
    assert resolve_world(synthetic) is synthetic
    folder = synthetic.save(tmp_path / "w")
    assert resolve_world(folder).hash == synthetic.hash
    assert resolve_world(str(folder)).hash == synthetic.hash
    with pytest.raises(DataError):
        resolve_world(tmp_path / "missing")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_item_events": 0},
        {"test_fraction": 0.0},
        {"test_fraction": 1.0},
        {"slate_size": 0},
        {"median_price": 0.0},
        {"click_target": "obd"},
    ],
)
def test_world_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs)).replace("_", "[-_]")):
        WorldConfig(**kwargs)


# ----------------------------------------------------------------------------- default World
@pytest.fixture(scope="module")
def tiny_default(tmp_path_factory):
    """A default World fitted with a tiny MF config into a private cache."""
    home = tmp_path_factory.mktemp("shopgym-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOPGYM_HOME", str(home))
        world = default_world(TINY_MF, TINY_WORLD, device="cpu", progress=False)
    return home, world


def test_default_world_is_cached_and_loaded_without_refit(tiny_default, monkeypatch):
    home, built = tiny_default
    folders = list((home / "worlds").iterdir())
    assert [f.name.startswith("movielens-small-bpr-") for f in folders] == [True]
    monkeypatch.setenv("SHOPGYM_HOME", str(home))
    forbid_refit(monkeypatch)
    build._load_cached.cache_clear()  # make it read the folder again
    loaded = default_world(TINY_MF, TINY_WORLD, device="cpu", progress=False)
    assert_same_world(loaded, built)
    assert_same_world(World.load(folders[0]), built)
    # A different configuration is a different World: it would need a fit.
    with pytest.raises(RefitError):
        default_world(replace(TINY_MF, seed=1), TINY_WORLD, device="cpu", progress=False)


def test_default_world_card_records_provenance(tiny_default):
    _, world = tiny_default
    card = world.card
    assert card["data"]["sha256"] == file_sha256(embedded_ratings_path())
    assert card["data"]["events"] == 100_004
    assert card["preference_model"]["dim"] == TINY_MF.dim
    assert card["preference_model"]["model"] == "bpr"
    assert card["preference_model"] == {**TINY_MF.resolved().to_dict(), "best_epoch": 1}
    assert card["split"]["users"] == 671
    assert card["split"]["test_events"] == 671  # every MovieLens user has >= 20 events
    assert card["catalogue"]["items"] == world.num_items == len(card["catalogue"]["item_ids"])
    assert len(card["shopper_ids"]) == world.num_shoppers == 671
    assert set(card["fit"]["test_metrics"]) == {"bpr", "popularity"}
    assert card["world_config"] == asdict(TINY_WORLD)
    assert card["builder_version"] == build.BUILDER_VERSION
    # The World is BPR, so "auto" fits GMF for the learned features, on the same split.
    learned = card["learned_features"]
    assert learned["model"] == "gmf" and learned["setting"] == "auto"
    assert learned["fit_config"]["seed"] == build._world_seeds(TINY_WORLD.seed)[3]
    assert learned["fit_config"]["epochs"] == 1 and len(learned["history"]) == 1
    assert {"hr@10", "ndcg@10"} <= set(learned["test_metrics"]["gmf"])
    assert world.learned_item_features.shape == (world.num_items, learned["dim"])
    assert world.model_name == "bpr" and world.model.hyperparameters() == {"dim": TINY_MF.dim}
    # The catalogue's item ids are the model's items at the catalogue's indices.
    assert world.catalogue.tolist() == sorted(world.catalogue.tolist())
    assert world.catalogue.unique().numel() == world.num_items


def test_movielens_world(movielens):
    config = WorldConfig()
    assert movielens.num_shoppers == 671
    # The catalogue is the items with enough training events.
    assert float(movielens.item_popularity.min()) >= config.min_item_events
    assert movielens.num_items == movielens.card["catalogue"]["items"]
    assert len(movielens.category_names) >= 18
    assert "Drama" in movielens.category_names
    assert list(movielens.category_names) == sorted(movielens.category_names)
    assert bool((movielens.item_category.sum(1) >= 1).float().mean() > 0.95)
    assert bool((movielens.item_price > 0).all())
    metrics = movielens.card["fit"]["test_metrics"]
    assert metrics["neumf"]["ndcg@10"] > metrics["popularity"]["ndcg@10"]
    assert movielens.model_name == "neumf"
    # Learned item features: BPR-MF (another family than NeuMF), better than popularity too.
    learned = movielens.card["learned_features"]
    assert learned["model"] == "bpr"
    assert movielens.learned_item_features.shape == (movielens.num_items, learned["fit_config"]["dim"] + 1)
    assert learned["test_metrics"]["bpr"]["ndcg@10"] > metrics["popularity"]["ndcg@10"]
    target = config.target()
    assert movielens.calibration.target["ctr"] == list(target.ctr)
    rates = position_click_rates(movielens, movielens.calibration, config.slate_size, samples=5000, seed=99)
    assert float(rates.sum()) == pytest.approx(0.15, abs=0.01)
    np.testing.assert_allclose(rates.numpy(), target.ctr, rtol=0.25)


def test_build_world_from_a_plain_ratings_file_without_categories(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        (user, item, 4.0, 1000 * user + t)
        for user in range(60)
        for t, item in enumerate(rng.permutation(40)[:12])
    ]
    path = tmp_path / "ratings.csv"
    path.write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)
    )
    world = build_world(
        load_ratings(path),
        items=None,
        fit_config=FitConfig(model="bpr", dim=8, epochs=3),
        world_config=WorldConfig(min_item_events=1),
        device="cpu",
        progress=False,
    )
    assert world.category_names == () and world.item_category.shape == (world.num_items, 0)
    assert bool((world.item_price > 0).all())
    assert world.num_shoppers == 60 and 0 < int(world.test_shopper.sum()) < 60
    assert set(world.card["fit"]["test_metrics"]) == {"bpr", "popularity"}
    assert world.card["data"]["sha256"] == load_ratings(path).sha256
    assert World.load(world.save(tmp_path / "world")).hash == world.hash


def test_save_atomically_keeps_a_world_already_there_and_leaves_no_staging(synthetic, tmp_path):
    folder = tmp_path / "worlds" / "w"
    save_atomically(synthetic, folder)
    # A concurrent build that finishes second must not replace (or half-write) the first.
    save_atomically(sub_catalogue(synthetic, torch.arange(10)), folder)
    assert World.load(folder).hash == synthetic.hash
    assert [path.name for path in folder.parent.iterdir()] == ["w"]


# ----------------------------------------------------------------------------- learned item features
@pytest.fixture(scope="module")
def learned(synthetic) -> World:
    """The synthetic World with (40, 3) learned item features."""
    features = torch.randn(40, 3, generator=torch.Generator().manual_seed(5))
    return replace(synthetic, learned_item_features=features)


def test_learned_features_round_trip(learned, tmp_path, monkeypatch):
    folder = learned.save(tmp_path / "world")
    tensors = torch.load(folder / "tensors.pt", weights_only=True)
    assert torch.equal(tensors["learned_item_features"], learned.learned_item_features)
    forbid_refit(monkeypatch)
    loaded = World.load(folder)
    assert torch.equal(loaded.learned_item_features, learned.learned_item_features)
    assert loaded.hash == learned.hash
    # A World without them saves none and loads as None, with another hash.
    plain = replace(learned, learned_item_features=None)
    assert World.load(plain.save(tmp_path / "plain")).learned_item_features is None
    assert "learned_item_features" not in torch.load(tmp_path / "plain" / "tensors.pt", weights_only=True)
    assert plain.hash != learned.hash


def test_hash_changes_with_the_learned_features(learned):
    features = learned.learned_item_features
    assert replace(learned, learned_item_features=perturbed(features)).hash != learned.hash
    # Their width is part of what environments show.
    assert replace(learned, learned_item_features=features[:, :2].contiguous()).hash != learned.hash


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(41, 3), r"learned_item_features has shape \(41, 3\), expected \(40, r\)"),
        (torch.zeros(40), "learned_item_features has shape"),
        (torch.zeros(40, 0), "learned_item_features has shape"),
        (torch.zeros(40, 3, dtype=torch.float64), "learned_item_features must be a torch.float32"),
        (torch.full((40, 3), math.nan), "learned_item_features contains NaN"),
        (torch.full((40, 3), math.inf), "learned_item_features contains NaN"),
        ([[0.0] * 3] * 40, "learned_item_features must be a torch.float32 tensor, got list"),
    ],
)
def test_malformed_learned_features_are_rejected(synthetic, bad, message):
    with pytest.raises(DataError, match=message):
        replace(synthetic, learned_item_features=bad)


def test_a_folder_with_a_malformed_learned_tensor_names_folder_and_problem(learned, tmp_path):
    folder = learned.save(tmp_path / "world")
    tensors = torch.load(folder / "tensors.pt", weights_only=True)
    tensors["learned_item_features"] = tensors["learned_item_features"][:7]
    torch.save(tensors, folder / "tensors.pt")
    with pytest.raises(DataError, match="learned_item_features has shape") as info:
        World.load(folder)
    assert str(folder) in str(info.value)


def test_a_format_2_world_is_refused_with_how_to_rebuild(synthetic, tmp_path):
    folder = synthetic.save(tmp_path / "world")
    card = json.loads((folder / "card.json").read_text())
    card["ground_truth"]["format_version"] = 2
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="World format 2") as info:
        World.load(folder)
    assert "shopgym fit --out" in str(info.value) and str(folder) in str(info.value)


@pytest.mark.gpu
def test_to_another_device_moves_the_learned_features(learned):
    moved = learned.to("cuda")
    assert moved.learned_item_features.device.type == "cuda"
    assert learned.learned_item_features.device.type == "cpu"
    assert moved.hash == learned.hash


def test_learned_features_model_follows_the_worlds_family():
    config = WorldConfig()
    assert [config.learned_model(name) for name in ("neumf", "gmf", "mlp", "mf", "bpr")] == [
        "bpr",
        "bpr",
        "bpr",
        "gmf",
        "gmf",
    ]
    assert WorldConfig(learned_features_model=None).learned_model("neumf") is None
    assert WorldConfig(learned_features_model="mlp").learned_model("bpr") == "mlp"
    # The World's own architecture would hand agents the truth's kind of vectors.
    with pytest.raises(ConfigError, match="World's own architecture"):
        WorldConfig(learned_features_model="mf").learned_model("bpr")
    with pytest.raises(ConfigError, match="--learned-features-model"):
        WorldConfig(learned_features_model="svd")
    with pytest.raises(ConfigError, match="--learned-features-epochs"):
        WorldConfig(learned_features_epochs=0)


def test_build_world_refuses_a_learned_model_of_the_worlds_architecture_before_fitting(monkeypatch):
    forbid_refit(monkeypatch)
    with pytest.raises(ConfigError, match="World's own architecture"):
        build_world(load_ratings(), fit_config=TINY_MF, world_config=WorldConfig(learned_features_model="mf"))


def test_synthetic_world_learned_features_are_opt_in_and_reproducible(synthetic):
    assert synthetic.learned_item_features is None
    world = build.synthetic_world(learned_features=True)
    again = build.synthetic_world(learned_features=True)
    assert world.learned_item_features.shape == (40, world.card["learned_features"]["dim"])
    assert torch.equal(world.learned_item_features, again.learned_item_features)
    assert world.hash == again.hash != synthetic.hash
    # Only the learned features differ from the default synthetic World.
    assert replace(world, learned_item_features=None, card=synthetic.card).hash == synthetic.hash
    assert world.card["learned_features"]["model"] == "gmf"

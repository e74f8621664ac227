"""`shopgym fit`: a World from a user's file, saved, loadable without refit, usable by `shopgym run`."""

import json

import numpy as np
import pytest

from shopgym.experiments.cli import main
from shopgym.simulator.world import World

FAST = [
    "--epochs",
    "2",
    "--dim",
    "8",
    "--no-progress",
    "--world.min-item-events",
    "1",
    "--world.learned-features-epochs",
    "2",
]


def _write_ratings(path, header="userId,movieId,rating,timestamp"):
    rng = np.random.default_rng(0)
    lines = [
        f"{user},{item},{rng.integers(1, 6)},{1000 * user + t}\n"
        for user in range(60)
        for t, item in enumerate(rng.permutation(40)[:12])
    ]
    path.write_text(header + "\n" + "".join(lines))
    return path


@pytest.mark.parametrize("model", ["mf", "bpr", "gmf", "mlp", "neumf"])
def test_fit_writes_a_world_that_loads_without_refit(tmp_path, model, capsys):
    data = _write_ratings(tmp_path / "ratings.csv")
    out = tmp_path / "world"
    assert main(["fit", "--data", str(data), "--model", model, "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "popularity" in printed and "click-through per position" in printed
    world = World.load(out)
    card = json.loads((out / "card.json").read_text())
    assert world.model_name == model and card["world_hash"] == world.hash
    assert card["data"]["source"] == str(data) and card["preference_model"]["model"] == model
    assert set(card["fit"]["test_metrics"]) == {model, "popularity"}
    assert {"hr@10", "ndcg@10", "recall@20", "sampled_hr@10", "sampled_ndcg@10"} <= set(
        card["fit"]["test_metrics"][model]
    )
    assert not (out / "fit-checkpoint.pt").exists()


def test_a_fitted_world_runs_an_experiment(tmp_path):
    data = _write_ratings(tmp_path / "ratings.csv")
    world, run = tmp_path / "world", tmp_path / "run"
    assert main(["fit", "--data", str(data), "--out", str(world), *FAST]) == 0
    argv = [
        "run",
        "--world",
        str(world),
        "--agents",
        "random,oracle",
        "--seeds",
        "2",
        "--episodes",
        "10",
        "--num-envs",
        "5",
        "--out",
        str(run),
        "--no-progress",
    ]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["world"]["hash"] == World.load(world).hash


def test_column_mapping_reads_a_generic_file(tmp_path):
    data = _write_ratings(tmp_path / "events.csv", header="customer,sku,qty,ts")
    out = tmp_path / "world"
    argv = [
        "fit",
        "--data",
        str(data),
        "--columns",
        "user=customer,item=sku,value=qty,time=ts",
        "--out",
        str(out),
    ]
    assert main([*argv, *FAST]) == 0
    assert World.load(out).num_shoppers == 60


def test_item_attributes_give_categories_and_prices(tmp_path, capsys):
    data = _write_ratings(tmp_path / "ratings.csv")
    prices = {item: 1.0 + item for item in range(40)}
    items = tmp_path / "items.csv"
    items.write_text(
        "id,kind,cost\n" + "".join(f"{i},{'even' if i % 2 == 0 else 'odd'},{p}\n" for i, p in prices.items())
    )
    out = tmp_path / "world"
    argv = [
        "fit",
        "--data",
        str(data),
        "--items",
        str(items),
        "--item-columns",
        "item=id,categories=kind,price=cost",
    ]
    assert main([*argv, "--out", str(out), *FAST]) == 0
    world = World.load(out)
    item_ids = world.card["catalogue"]["item_ids"]
    assert world.item_price.tolist() == [prices[item] for item in item_ids]
    assert world.category_names == ("even", "odd")
    assert world.item_category[:, 0].tolist() == [float(item % 2 == 0) for item in item_ids]
    assert world.card["prices"] == "from the item attributes"
    # A catalogue item without a price is an error, not a silently generated price.
    items.write_text("id,cost\n" + "".join(f"{i},{p}\n" for i, p in prices.items() if i != 5))
    assert main([*argv[:-1], "item=id,price=cost", "--out", str(tmp_path / "w2"), *FAST]) == 2
    assert "no price in the item attributes, e.g. item 5" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--columns", "user"], "--columns"),
        (["--items", "missing.csv"], "missing.csv"),
        (["--model", "mlp", "--layers", "7", "3"], "--layers"),
        (["--lr", "0"], "--lr"),
        (["--world.click-target", "obd:kids"], "kids"),
        (["--world.click-target", "elsewhere"], "--click-target"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path, capsys, extra, named):
    data = _write_ratings(tmp_path / "ratings.csv")
    try:
        code = main(["fit", "--data", str(data), "--out", str(tmp_path / "w"), *FAST, *extra])
    except SystemExit as exit:  # options a config rejects while being parsed: tyro's error box
        code = exit.code
    error = capsys.readouterr().err
    assert code == 2 and named in error and "Traceback" not in error


def test_an_existing_world_is_never_overwritten(tmp_path, capsys):
    data = _write_ratings(tmp_path / "ratings.csv")
    out = tmp_path / "world"
    assert main(["fit", "--data", str(data), "--out", str(out), *FAST]) == 0
    before = (out / "card.json").read_bytes()
    assert main(["fit", "--data", str(data), "--out", str(out), *FAST]) == 2
    assert "already holds a World" in capsys.readouterr().err
    assert (out / "card.json").read_bytes() == before


def test_a_malformed_data_file_names_file_and_line(tmp_path, capsys):
    data = tmp_path / "ratings.csv"
    data.write_text("userId,movieId,rating,timestamp\n1,2,3,4\n1,x,3,5\n")
    assert main(["fit", "--data", str(data), "--out", str(tmp_path / "w"), *FAST]) == 2
    error = capsys.readouterr().err
    assert str(data) in error and "line 3" in error and "item" in error

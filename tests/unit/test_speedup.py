"""SpeeD speed-up: log-iteration interpolation, lower bounds, 'not reached', seeds."""

import math

import pandas as pd
import pytest

from frugaldiff.report.speedup import iterations_to_reach, speedup_table


def test_interpolates_on_a_log_iteration_axis() -> None:
    needed, mark = iterations_to_reach([100, 400], [50.0, 30.0], 40.0)
    assert mark == ""
    assert needed == pytest.approx(200.0)  # halfway in log between 100 and 400


def test_already_better_at_first_checkpoint_is_a_bound() -> None:
    assert iterations_to_reach([100, 400], [20.0, 10.0], 40.0) == (100.0, "<=")


def test_never_reaching_the_target() -> None:
    needed, mark = iterations_to_reach([100, 400], [60.0, 50.0], 40.0)
    assert math.isnan(needed)
    assert mark == "not reached"


def rows(method: str, seed: int, fids: dict[int, float]) -> list[dict]:
    return [
        {
            "metric": "fid",
            "solver": "ddim",
            "steps": 16,
            "w": 0.0,
            "method": method,
            "train_seed": seed,
            "iteration": it,
            "value": v,
        }
        for it, v in fids.items()
    ]


def test_speedup_table_against_the_baseline_final_fid() -> None:
    tidy = pd.DataFrame(
        rows("baseline", 0, {100: 60.0, 400: 40.0})
        + rows("speed", 0, {100: 50.0, 400: 30.0})
        + rows("speed-sampler", 0, {100: 70.0, 400: 45.0})
    )
    table = speedup_table(tidy).set_index("variant")
    assert table.loc["baseline", "speed-up (measured)"] == "1"
    assert table.loc["speed", "speed-up (measured)"] == "2"  # reaches 40 at 200 = 400/2
    assert table.loc["speed-sampler", "speed-up (measured)"] == "not reached"
    assert table.loc["speed", "speed-up (paper claim)"] != ""
    assert table.loc["baseline", "speed-up (paper claim)"] == ""
    assert table.loc["speed", "FID@400"] == "30"


def test_several_seeds_give_mean_and_spread() -> None:
    tidy = pd.DataFrame(
        rows("baseline", 0, {100: 60.0, 400: 40.0})
        + rows("baseline", 1, {100: 62.0, 400: 42.0})
        + rows("speed", 0, {100: 50.0, 400: 30.0})
        + rows("speed", 1, {100: 52.0, 400: 32.0})
    )
    table = speedup_table(tidy).set_index("variant")
    assert "±" in table.loc["speed", "FID@400"]
    assert table.loc["speed", "seeds"] == 2


def test_each_row_names_the_backbone_it_trained() -> None:
    # The paper's component ablation trains a latent U-Net; the table says what each row trained.
    tidy = pd.DataFrame(
        rows("baseline", 0, {100: 60.0, 400: 40.0}) + rows("speed-sampler", 0, {100: 50.0})
    )
    tidy["model"] = "DiT-XL/2"
    table = speedup_table(tidy).set_index("variant")
    assert table.loc["speed-sampler", "model"] == "DiT-XL/2"
    older = speedup_table(tidy.drop(columns="model")).set_index("variant")
    assert older.loc["baseline", "model"] == "n/a (not recorded)"

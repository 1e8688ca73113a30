"""Config parsing: unknown and mistyped keys fail naming file, key and nearest valid key."""

from pathlib import Path

import pytest
import yaml

from frugaldiff.config import (
    RunConfig,
    TrainConfig,
    from_dict,
    load_run_config,
    parse_tier_config,
    resolve_run,
    to_dict,
)
from frugaldiff.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def smoke() -> dict:
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


def test_misspelled_key_names_file_key_and_nearest() -> None:
    data = smoke()
    data["runs"]["speed-baseline"]["train"]["iteratons"] = 10
    with pytest.raises(ConfigError) as err:
        parse_tier_config(data, "configs/smoke.yaml")
    message = str(err.value)
    assert "configs/smoke.yaml" in message
    assert "runs.speed-baseline.train.iteratons" in message
    assert "'iterations'" in message


def test_mistyped_value_names_key_and_types() -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml: lr expected float, got str 'fast'"):
        from_dict(TrainConfig, {"lr": "fast"}, "f.yaml")


def test_bool_is_not_an_int() -> None:
    with pytest.raises(ConfigError, match="iterations expected int"):
        from_dict(TrainConfig, {"iterations": True}, "f.yaml")


def test_ckpt_iters_beyond_budget_rejected() -> None:
    data = smoke()
    data["runs"]["speed-baseline"]["train"]["ckpt_iters"] = [50, 10_000]
    with pytest.raises(ConfigError, match="ckpt_iters"):
        parse_tier_config(data, "smoke.yaml")


def test_unknown_jump_model_is_named() -> None:
    data = smoke()
    data["runs"]["distill-student"]["sample_sets"][-1]["jump_model"] = "double"
    with pytest.raises(ConfigError, match=r"runs\.distill-student\.sample_sets\[2\]\.jump_model="):
        parse_tier_config(data, "smoke.yaml")


def test_s_on_a_direct_run_is_named() -> None:
    """Meng's S sampler is defined for w-conditioned students; a direct student uses D."""
    data = smoke()
    data["runs"]["distill-direct"]["sample_sets"].append(
        {"solver": "stochastic", "steps": 8, "w": 1.0}
    )
    with pytest.raises(
        ConfigError,
        match=r"smoke\.yaml: runs\.distill-direct\.sample_sets\[1\]\.solver='stochastic' "
        r"with distill\.stage 'direct'; expected 'ddim'.*S is defined for w-conditioned",
    ):
        parse_tier_config(data, "smoke.yaml")


def test_only_a_direct_run_trains_nothing() -> None:
    data = smoke()
    direct = data["runs"]["distill-direct"]
    direct["train"] = {**direct["train"], "iterations": 60, "ckpt_iters": [60]}
    with pytest.raises(ConfigError, match=r"runs\.distill-direct\.train\.iterations=60.*"
                       r"expected iterations 0 and ckpt_iters \[0\]"):  # fmt: skip
        parse_tier_config(data, "smoke.yaml")
    data = smoke()
    student = data["runs"]["distill-student"]
    student["train"] = {**student["train"], "iterations": 0, "ckpt_iters": [0]}
    with pytest.raises(ConfigError, match=r"runs\.distill-student\.train\.iterations=0.*"
                       r"only a distill\.stage 'direct' run"):  # fmt: skip
        parse_tier_config(data, "smoke.yaml")
    data = smoke()
    del data["runs"]["distill-direct"]["init_from"]
    with pytest.raises(ConfigError, match=r"distill\.stage='direct' needs init_from"):
        parse_tier_config(data, "smoke.yaml")


def test_sample_sets_sharing_their_file_name_are_rejected() -> None:
    data = smoke()
    sets = data["runs"]["speed-baseline"]["sample_sets"]
    sets.append({**sets[0], "variance": "large"})  # same solver, steps, w: same files
    with pytest.raises(ConfigError, match=r"speed-baseline\.sample_sets\[0\] and \[1\] are both"):
        parse_tier_config(data, "smoke.yaml")


def test_sample_set_spacing_is_checked_against_solver_and_schedule() -> None:
    data = smoke()
    data["runs"]["speed-baseline"]["sample_sets"][0]["spacing"] = "even"
    with pytest.raises(ConfigError, match=r"speed-baseline\.sample_sets\[0\]\.spacing='even'"):
        parse_tier_config(data, "smoke.yaml")
    data = smoke()
    data["runs"]["speed-baseline"]["sample_sets"] = [
        {"solver": "heun", "steps": 8, "spacing": "iddpm"}
    ]
    with pytest.raises(ConfigError, match=r"heun: 'trailing'"):
        parse_tier_config(data, "smoke.yaml")
    data = smoke()
    run = data["runs"]["speed-baseline"]
    run["diffusion"] = {"schedule": "cosine", "learn_sigma": False}
    run["sample_sets"] = [{"solver": "ddim", "steps": 8, "spacing": "iddpm"}]
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"spacing='iddpm' respaces a discrete schedule"):
        resolve_run(tier, "speed-baseline", REPO / "configs")


def test_unknown_method_block_lists_known(tmp_path: Path) -> None:
    data = smoke()
    data["runs"]["speed-baseline"]["method"] = "basline"
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"expected one of \[.*'baseline'"):
        resolve_run(tier, "speed-baseline", REPO / "configs")


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    tier = parse_tier_config(smoke(), "smoke.yaml")
    run = resolve_run(tier, "speed-baseline", REPO / "configs")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(to_dict(run)))
    assert load_run_config(path) == run
    assert isinstance(run, RunConfig)
    assert run.diffusion.parameterization == "eps"  # from configs/method/baseline.yaml


def test_run_overrides_method_block() -> None:
    data = smoke()
    data["runs"]["speed"]["diffusion"] = {"loss_weighting": {"ceiling": 0.8}}
    run = resolve_run(parse_tier_config(data, "s.yaml"), "speed", REPO / "configs")
    assert run.diffusion.loss_weighting.ceiling == 0.8
    assert run.diffusion.loss_weighting.name == "change_aware"  # kept from the block (deep merge)
    assert run.diffusion.schedule == "linear_beta"


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("tier: smoke\n")
    with pytest.raises(ConfigError, match="missing required keys"):
        load_run_config(path)


def test_misspelled_resource_kind_is_named() -> None:
    data = smoke()
    data["resources"]["trian"] = data["resources"].pop("train")
    with pytest.raises(ConfigError, match=r"resources\.trian is not a rule kind.*'train'"):
        parse_tier_config(data, "smoke.yaml")


@pytest.mark.parametrize(("dataset", "resolution"), [("cifar10", 12), ("imagenet64", 16)])
def test_resolution_only_divides_cifar10(dataset: str, resolution: int) -> None:
    data = smoke()
    data["data"].update(dataset=dataset, resolution=resolution)
    with pytest.raises(ConfigError, match=rf"data\.resolution={resolution} with data\.dataset="):
        parse_tier_config(data, "smoke.yaml")


def test_s_half_from_a_student_grid_chain_is_refused() -> None:
    """Meng et al. (arXiv 2210.03142, Sec. 4.2): S's N/2-step jumps need the `fine` grid."""
    from frugaldiff.config import DistillConfig

    assert DistillConfig().train_grid == "fine"
    data = smoke()
    data["runs"]["distill-student"]["distill"]["train_grid"] = "student"
    with pytest.raises(ConfigError, match=r"distill-student\.sample_sets\[2\] draw S with"):
        parse_tier_config(data, "smoke.yaml")
    data["runs"]["distill-student"]["sample_sets"][2]["jump_model"] = "same"
    parse_tier_config(data, "smoke.yaml")


def test_a_floor_larger_than_the_test_split_fails_before_any_job() -> None:
    data = smoke()
    data["evaluation"]["sample_images"] = 300  # the smoke tier keeps 256 test images
    with pytest.raises(ConfigError, match=r"evaluation\.floor needs .*sample_images=300.*has 256"):
        parse_tier_config(data, "smoke.yaml")
    data["evaluation"]["floor"] = False
    parse_tier_config(data, "smoke.yaml")


def test_init_weights_resume_needs_a_plain_follow_up_run() -> None:
    data = smoke()
    assert data["runs"]["masked-deferred-75-ft"]["train"]["init_weights"] == "resume"
    data["runs"]["speed-baseline"]["train"] = {
        **data["runs"]["speed-baseline"]["train"],
        "init_weights": "resume",
    }
    with pytest.raises(ConfigError, match=r"runs\.speed-baseline\.train\.init_weights='resume'"):
        parse_tier_config(data, "smoke.yaml")
    data = smoke()
    data["runs"]["distill-student"]["train"] = {
        **data["runs"]["distill-student"]["train"],
        "init_weights": "raw",
    }
    with pytest.raises(
        ConfigError, match=r"init_weights='raw'; expected one of \['ema', 'resume'\]"
    ):
        parse_tier_config(data, "smoke.yaml")
    data["runs"]["distill-student"]["train"]["init_weights"] = "resume"
    with pytest.raises(ConfigError, match=r"needs init_from and no distill\.stage"):
        parse_tier_config(data, "smoke.yaml")


def test_draw_batch_must_divide_the_batch() -> None:
    data = smoke()
    run = data["runs"]["speed"]
    run["diffusion"] = {**run.get("diffusion", {}), "timesteps": {"draw_batch": 3}}
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"runs\.speed\.diffusion\.timesteps\.draw_batch=3"):
        resolve_run(tier, "speed", REPO / "configs")


def _with_diffusion(run: str, diffusion: dict) -> dict:
    data = smoke()
    data["runs"][run] = {**data["runs"][run], "diffusion": diffusion}
    return data


def test_a_key_the_sampler_or_weighting_does_not_read_is_named() -> None:
    data = _with_diffusion("speed-baseline", {"timesteps": {"name": "uniform", "tau": 500, "k": 3}})
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError) as err:
        resolve_run(tier, "speed-baseline", REPO / "configs")
    message = str(err.value)
    assert "runs.speed-baseline.diffusion.timesteps.k: timesteps 'uniform'" in message
    assert "(method 'baseline', " in message
    assert "configs/method/baseline.yaml + run table) does not use it" in message
    data = _with_diffusion("speed", {"loss_weighting": {"name": "snr", "ceiling": 0.7}})
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"loss_weighting\.ceiling: loss_weighting 'snr'"):
        resolve_run(tier, "speed", REPO / "configs")


def test_resolved_configs_show_only_live_parameters() -> None:
    tier = parse_tier_config(smoke(), "smoke.yaml")
    baseline = to_dict(resolve_run(tier, "speed-baseline", REPO / "configs"))["diffusion"]
    assert baseline["timesteps"] == {"name": "uniform", "draw_batch": None}
    assert baseline["loss_weighting"] == {"name": "snr"}
    speed = to_dict(resolve_run(tier, "speed", REPO / "configs"))["diffusion"]
    assert set(speed["timesteps"]) == {"name", "k", "tau", "dual", "dual_anchor", "draw_batch"}
    assert set(speed["loss_weighting"]) == {"name", "ceiling", "tau", "tail_weight"}


def test_speeds_two_taus_must_agree() -> None:
    data = _with_diffusion("speed", {"timesteps": {"tau": 650}})
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(
        ConfigError, match=r"timesteps\.tau=650 but diffusion\.loss_weighting\.tau=700"
    ):
        resolve_run(tier, "speed", REPO / "configs")
    agreed = _with_diffusion("speed", {"timesteps": {"tau": 650}, "loss_weighting": {"tau": 650}})
    resolve_run(parse_tier_config(agreed, "smoke.yaml"), "speed", REPO / "configs")


def test_a_masking_label_that_disagrees_with_the_model_is_refused() -> None:
    data = smoke()
    data["runs"]["masked-naive-50"] = {**data["runs"]["masked-naive-50"], "variant": "deferred"}
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"variant='deferred', but its model .* is 'naive'"):
        resolve_run(tier, "masked-naive-50", REPO / "configs")
    data = smoke()
    data["runs"]["masked-deferred-50"] = {
        **data["runs"]["masked-deferred-50"],
        "variant": "unmasked",
    }
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"mask_ratio=0\.5 .* is 'deferred'"):
        resolve_run(tier, "masked-deferred-50", REPO / "configs")


@pytest.mark.parametrize("also_in", [["combnied"], ["distill"]])
def test_also_in_must_name_another_study_of_the_tier(also_in: list[str]) -> None:
    data = smoke()
    data["runs"]["distill-teacher"]["also_in"] = also_in
    with pytest.raises(ConfigError, match=rf"runs\.distill-teacher\.also_in=.*'{also_in[0]}'"):
        parse_tier_config(data, "smoke.yaml")
    data["runs"]["distill-teacher"]["also_in"] = ["combined"]
    assert parse_tier_config(data, "smoke.yaml").runs["distill-teacher"].also_in == ("combined",)


def test_a_caption_conditioned_size_is_refused_before_any_job() -> None:
    data = smoke()
    data["runs"]["masked-unmasked"]["model"] = {"name": "MicroDiT-Tiny/2-t2i"}
    tier = parse_tier_config(data, "smoke.yaml")
    with pytest.raises(ConfigError, match=r"runs\.masked-unmasked\.model\.name=.*captions"):
        resolve_run(tier, "masked-unmasked", REPO / "configs")

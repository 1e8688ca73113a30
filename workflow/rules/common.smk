# Config -> run table, path helpers and input functions. Validation happens here, before any
# job: frugaldiff.config names the file, the dotted key and the nearest valid key; the JSON
# schema then checks the same structure for `snakemake --lint` and editors.
#
# results/<tier>/
#   config/{data,evaluation}.yaml       resolved tier blocks
#   data/<dataset>/{train,test}.npz     uint8 (N, 3, H, W) + labels (cifar10: 32, imagenet64: 64)
#   data/<dataset>/latents/train.npz    VAE posterior mean/std, both flips (only with data.latent)
#   reference/<dataset>-<split>.npz     Inception statistics (both pipelines) + provenance
#   <run>/config.yaml                   resolved run config
#   <run>/ckpt/iter<k>.pt               checkpoints (raw + EMA weights); a direct run's iter0.pt
#                                       is its CFG teacher's EMA, the first halving's teacher
#   <run>/train/metrics.jsonl           loss, lr, images/s
#   <run>/state/                        resumable state (undeclared; survives failures)
#   <run>/samples/iter<k>/<set>/        images.npz, grid.png, meta.json
#   <run>/samples/n<N>/<set>/           a halving's sets: <solver>-s<N>-w<w> on its own grid;
#                                       stochastic-s<2N>-w<w>: S `half`, this student jumps
#   <run>/metrics/iter<k>/<set>.json    FID, KID, IS + provenance
#   report/{tables,figures}/            the tier's tables and plots
import os
import sys
from pathlib import Path

from snakemake.utils import validate

from frugaldiff.config import parse_tier_config, resolve_run, to_dict

TIER = parse_tier_config(config, source=" + ".join(map(str, workflow.configfiles)) or "config")


validate(config, "../schemas/config.schema.yaml", set_default=False)

RESULTS = f"{TIER.results_dir}/{TIER.tier}"
STUDIES = sorted({spec.study for spec in TIER.runs.values()})
CACHE = f"{TIER.results_dir}/cache"
DATASET = TIER.data.dataset
DATA = f"{RESULTS}/data/{DATASET}"
# The data floor (data_floor in evaluate.smk): N real images of the split that is not the
# reference.
FLOOR_SPLIT = TIER.evaluation.floor_split
FLOOR = f"{RESULTS}/reference/{DATASET}-{FLOOR_SPLIT}-floor.json"
# What training reads: the uint8 split, or its cached latents when the tier sets data.latent.
TRAIN_INPUT = f"{DATA}/latents/train.npz" if TIER.data.latent else f"{DATA}/train.npz"
# Jobs find the `frugaldiff` CLI of the Python that runs Snakemake, so no venv needs activating
# (locally or inside SLURM jobs, which reuse the calling Snakemake's Python).
shell.prefix(f"export PATH={Path(sys.executable).parent}:$PATH; ")
ENVIRONMENT = "../../environment.yml"
CONFIG_BLOCKS = Path(workflow.basedir) / "configs"


wildcard_constraints:
    run="|".join(TIER.runs),
    block="data|evaluation",
    split="train|test",
    ckpt=r"iter\d+|n\d+",
    n=r"\d+",
    solver=r"[a-z_]+",
    steps=r"\d+",
    w=r"\d+(\.\d+)?",
    study="|".join(STUDIES),


def run_path(*parts):
    """results/<tier>/{run}/<parts>."""
    return str(Path(RESULTS, "{run}", *parts))


# A sample set of checkpoint {ckpt}: "iter<k>" of a training run or "n<N>" of a halving.
SAMPLE_SET = "{ckpt}/{solver}-s{steps}-w{w}"


def resources_for(kind, key):
    """Resource `key` of rule kind `kind` from the tier config (falls back to `default`)."""
    spec = TIER.resources.get(kind) or TIER.resources.get("default")
    if spec is None:
        raise ValueError(f"tier config has no resources.{kind} or resources.default")
    return getattr(spec, key)


def job_resources(kind):
    """A rule's `resources:` from the tier config, in the keys the pinned SLURM plugin reads.

    gpu -> sbatch --gpus (gpu_model -> --gpus=<model>:N); runtime grows with the attempt, as a
    retried job resumes from its state; slurm_extra asks SLURM for SIGTERM before the limit.
    Partition and account come from FRUGALDIFF_SLURM_PARTITION / FRUGALDIFF_SLURM_ACCOUNT or
    the profile's default-resources (a rule-level key would override the profile), never from
    here. Locally Snakemake ignores the SLURM keys.
    """
    runtime = resources_for(kind, "runtime")
    spec = {
        "mem_mb": resources_for(kind, "mem_mb"),
        "runtime": lambda wildcards, attempt: runtime * attempt,
        "gpu": resources_for(kind, "gpus"),
        "slurm_extra": f"--signal=TERM@{resources_for(kind, 'signal_before_limit_s')}",
    }
    if resources_for(kind, "gpu_model"):
        spec["gpu_model"] = resources_for(kind, "gpu_model")
    for key, variable in (("slurm_partition", "PARTITION"), ("slurm_account", "ACCOUNT")):
        if os.environ.get(f"FRUGALDIFF_SLURM_{variable}"):
            spec[key] = os.environ[f"FRUGALDIFF_SLURM_{variable}"]
    return spec


def resolved_run(wildcards):
    """The run's resolved config as a plain dict (a param: a change re-runs what depends on it)."""
    return to_dict(resolve_run(TIER, wildcards.run, CONFIG_BLOCKS))


def init_checkpoint(wildcards):
    """The final checkpoint of the run this one starts from (fine-tuning), or nothing."""
    init = TIER.runs[wildcards.run].init_from
    return [f"{RESULTS}/{init}/ckpt"] if init else []


def resolved_block(wildcards):
    """A tier-level block (data or evaluation) as a plain dict."""
    return to_dict(getattr(TIER, wildcards.block))


def checkpoints_of(run):
    """Declared checkpoint paths of `run`."""
    iters = TIER.runs[run].train.ckpt_iters
    return [f"{RESULTS}/{run}/ckpt/iter{k}.pt" for k in iters]


def reference_for_run(wildcards):
    return f"{RESULTS}/reference/{DATASET}-{TIER.evaluation.reference_split}.npz"


def halvings_of(run):
    """Student step counts of the run's halvings (empty unless it is a stage-1 or direct run)."""
    from frugaldiff.explain import halvings_of as halvings

    return halvings(TIER.runs[run])


def sample_sets_of(run):
    """(checkpoint, sample set) names of every set of `run` (frugaldiff/explain.py)."""
    from frugaldiff.explain import sample_set_names

    return sample_set_names(TIER.runs[run])


def metrics_of(run):
    """Every metrics file of `run`: checkpoint x sample set, plus each halving's sets."""
    return [f"{RESULTS}/{run}/metrics/{ckpt}/{name}.json" for ckpt, name in sample_sets_of(run)]


def halving_teacher(wildcards):
    """The 2N-step model that teaches the N-step student: a halving, the stage-1 student, or a
    direct run's ckpt/iter0.pt (its CFG teacher's EMA, written by a train job of 0 updates)."""
    n, d = int(wildcards.n), TIER.runs[wildcards.run].distill
    if 2 * n == d.start_steps:
        last = TIER.runs[wildcards.run].train.ckpt_iters[-1]
        return f"{RESULTS}/{wildcards.run}/ckpt/iter{last}.pt"
    return f"{RESULTS}/{wildcards.run}/halving/n{2 * n}/ckpt.pt"


def halving_teacher_input(wildcards):
    """What a halving waits for: the previous halving's file or the stage-1 ckpt folder."""
    if 2 * int(wildcards.n) == TIER.runs[wildcards.run].distill.start_steps:
        return f"{RESULTS}/{wildcards.run}/ckpt"
    return halving_teacher(wildcards)


def checkpoint_file(wildcards):
    """The checkpoint behind sample-set wildcard {ckpt} (iter<k> or n<N>)."""
    if wildcards.ckpt.startswith("n"):
        return f"{RESULTS}/{wildcards.run}/halving/{wildcards.ckpt}/ckpt.pt"
    return f"{RESULTS}/{wildcards.run}/ckpt/{wildcards.ckpt}.pt"


def checkpoint_input(wildcards):
    """What a sample set waits for: the halving's file or the training run's ckpt folder."""
    if wildcards.ckpt.startswith("n"):
        return checkpoint_file(wildcards)
    return f"{RESULTS}/{wildcards.run}/ckpt"


def runs_of_study(study):
    """The runs a study's report reads: its own and those that name it in `also_in`."""
    return [
        name
        for name, spec in TIER.runs.items()
        if spec.study == study or study in spec.also_in
    ]


def metrics_of_study(wildcards):
    """Metrics files of every run in study `wildcards.study`."""
    return [path for run in runs_of_study(wildcards.study) for path in metrics_of(run)]


def summaries_of_study(wildcards):
    """train/summary.json (throughput, counted FLOPs) of every run and halving in the study."""
    return summaries_of_runs(runs_of_study(wildcards.study))


def summaries_of_runs(runs):
    """train/summary.json of each run and halving/n<N>/summary.json of each of its halvings."""
    paths = [f"{RESULTS}/{run}/train/summary.json" for run in runs]
    for run in runs:
        paths += [f"{RESULTS}/{run}/halving/n{n}/summary.json" for n in halvings_of(run)]
    return paths


def report_tables(study):
    return [f"{RESULTS}/report/{study}/tables"]


def report_figures(study):
    return [f"{RESULTS}/report/{study}/figures"]


def all_training():
    """Every training output of the tier: each run's summary and each halving's checkpoint."""
    paths = [f"{RESULTS}/{run}/train/summary.json" for run in TIER.runs]
    for run in TIER.runs:
        paths += [f"{RESULTS}/{run}/halving/n{n}/ckpt.pt" for n in halvings_of(run)]
    return paths


def all_sample_sets():
    """Every sample set of the tier (images.npz), the counterpart of every metrics file."""
    return [
        f"{RESULTS}/{run}/samples/{ckpt}/{name}/images.npz"
        for run in TIER.runs
        for ckpt, name in sample_sets_of(run)
    ]


def report_outputs(study):
    """The report files of one study (what its named target asks for)."""
    if study not in STUDIES:
        raise ValueError(
            f"tier {TIER.tier!r} has no runs with study: {study}; its studies are {STUDIES}"
        )
    return [f"{RESULTS}/report/{study}/metrics_tidy.csv", *report_tables(study),
            *report_figures(study)]


def study_target(study):
    """Input function of a named target (`snakemake speed`): fails clearly if the tier lacks it."""

    def inputs(wildcards):
        return report_outputs(study)

    return inputs


def all_reports():
    return [path for study in STUDIES for path in report_outputs(study)]

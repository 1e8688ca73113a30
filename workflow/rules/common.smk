# Config -> run table, path helpers and input functions. Validation happens here, before any
# job: frugaldiff.config names the file, the dotted key and the nearest valid key; the JSON
# schema then checks the same structure for `snakemake --lint` and editors.
#
# results/<tier>/
#   config/{data,evaluation}.yaml       resolved tier blocks
#   data/cifar10/{train,test}.npz       uint8 (N, 3, 32, 32) + labels
#   reference/cifar10-<split>.npz       Inception statistics (both pipelines) + provenance
#   <run>/config.yaml                   resolved run config
#   <run>/ckpt/iter<k>.pt               checkpoints (raw + EMA weights)
#   <run>/train/metrics.jsonl           loss, lr, images/s
#   <run>/state/                        resumable state (undeclared; survives failures)
#   <run>/samples/iter<k>/<set>/        images.npz, grid.png, meta.json
#   <run>/metrics/iter<k>/<set>.json    FID, KID, IS + provenance
#   report/{tables,figures}/            the tier's tables and plots
import sys
from pathlib import Path

from snakemake.utils import validate

from frugaldiff.config import parse_tier_config, resolve_run, to_dict

TIER = parse_tier_config(config, source=" + ".join(map(str, workflow.configfiles)) or "config")


validate(config, "../schemas/config.schema.yaml", set_default=False)

RESULTS = f"{TIER.results_dir}/{TIER.tier}"
STUDIES = sorted({spec.study for spec in TIER.runs.values()})
CACHE = f"{TIER.results_dir}/cache"
# Jobs find the `frugaldiff` CLI of the Python that runs Snakemake, so no venv needs activating
# (locally or inside SLURM jobs, which reuse the calling Snakemake's Python).
shell.prefix(f"export PATH={Path(sys.executable).parent}:$PATH; ")
ENVIRONMENT = "../../environment.yml"
CONFIG_BLOCKS = Path(workflow.basedir) / "configs"


wildcard_constraints:
    run="|".join(TIER.runs),
    block="data|evaluation",
    split="train|test",
    iteration=r"\d+",
    solver=r"[a-z_]+",
    steps=r"\d+",
    w=r"\d+(\.\d+)?",
    study="|".join(STUDIES),


def run_path(*parts):
    """results/<tier>/{run}/<parts>."""
    return str(Path(RESULTS, "{run}", *parts))


SAMPLE_SET = "iter{iteration}/{solver}-s{steps}-w{w}"


def resources_for(kind, key):
    """Resource `key` of rule kind `kind` from the tier config (falls back to `default`)."""
    spec = TIER.resources.get(kind) or TIER.resources.get("default")
    if spec is None:
        raise ValueError(f"tier config has no resources.{kind} or resources.default")
    return getattr(spec, key)


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
    return f"{RESULTS}/reference/cifar10-{TIER.evaluation.reference_split}.npz"


def metrics_of(run):
    """Every metrics file of `run`: checkpoint x sample set."""
    spec = TIER.runs[run]
    return [
        f"{RESULTS}/{run}/metrics/iter{k}/{s.solver}-s{s.steps}-w{s.w:g}.json"
        for k in spec.train.ckpt_iters
        for s in spec.sample_sets
    ]


def metrics_of_study(wildcards):
    """Metrics files of every run in study `wildcards.study`."""
    runs = [name for name, spec in TIER.runs.items() if spec.study == wildcards.study]
    return [path for run in runs for path in metrics_of(run)]


def report_tables(study):
    stem = f"{RESULTS}/report/{study}/tables"
    return [f"{stem}/{name}.{fmt}" for name in ("fid_over_training", "summary")
            for fmt in ("csv", "md", "tex")]


def report_figures(study):
    stem = f"{RESULTS}/report/{study}/figures/fid_vs_iteration"
    return [f"{stem}.{fmt}" for fmt in ("png", "pdf")]


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

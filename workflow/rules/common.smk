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


def resolved_block(wildcards):
    """A tier-level block (data or evaluation) as a plain dict."""
    return to_dict(getattr(TIER, wildcards.block))


def checkpoints_of(run):
    """Declared checkpoint paths of `run`."""
    iters = TIER.runs[run].train.ckpt_iters
    return [f"{RESULTS}/{run}/ckpt/iter{k}.pt" for k in iters]


def reference_for_run(wildcards):
    return f"{RESULTS}/reference/cifar10-{TIER.evaluation.reference_split}.npz"


def all_metrics():
    """Every metrics file of the tier: run x checkpoint x sample set."""
    paths = []
    for run, spec in TIER.runs.items():
        for k in spec.train.ckpt_iters:
            for s in spec.sample_sets:
                paths.append(f"{RESULTS}/{run}/metrics/iter{k}/{s.solver}-s{s.steps}-w{s.w:g}.json")
    return paths


def report_tables():
    stem = f"{RESULTS}/report/tables/fid_over_training"
    return [f"{stem}.{fmt}" for fmt in ("csv", "md", "tex")]


def report_figures():
    stem = f"{RESULTS}/report/figures/fid_vs_iteration"
    return [f"{stem}.{fmt}" for fmt in ("png", "pdf")]


def report_outputs():
    return [f"{RESULTS}/report/metrics_tidy.csv", *report_tables(), *report_figures()]

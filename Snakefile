# frugaldiff: one DAG from dataset archive to paper tables (see README.md and DESIGN.md).
#
#   snakemake --cores all                                   # smoke tier (configs/smoke.yaml)
#   snakemake --cores all --configfile configs/cifar10.yaml # one GPU
#   snakemake --profile slurm all                           # a SLURM cluster
from snakemake.utils import min_version

min_version("9.0")


# The smoke tier is the default; a --configfile replaces it whole. (A bare `configfile:` would be
# merged key by key under every --configfile: smoke's runs and data.train_images leaked into
# the other tiers.)
if not workflow.overwrite_configfiles:

    configfile: "configs/smoke.yaml"


# `snakemake --report report.html` after a run: every study's tables and figures, the frontier
# and every sample grid, each with a caption (workflow/report/*.rst).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/latents.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_reports(),
    default_target: True


rule speed:
    input:
        study_target("speed"),


rule masked:
    input:
        study_target("masked"),


rule distill:
    input:
        study_target("distill"),


# The methods together (report/combined.py): SpeeD on masked MicroDiT; a SpeeD-trained teacher.
rule combined:
    input:
        study_target("combined"),


# FID against training and sampling cost over every run of every study (report/frontier.py).
rule frontier:
    input:
        f"{RESULTS}/frontier/tables",
        f"{RESULTS}/frontier/figures",


rule tables:
    input:
        [path for study in STUDIES for path in report_tables(study)],


rule figures:
    input:
        [path for study in STUDIES for path in report_figures(study)],


# Partial runs: every training job (runs, fine-tuning, stage 1, halvings), or every sample set,
# with nothing downstream. `--until train_model` (halve_steps, generate_samples,
# compute_metrics) does the same per rule; workflow/rules/until.smk says how, and why.
rule train:
    input:
        all_training(),


rule samples:
    input:
        all_sample_sets(),


# Last: it reads the named targets above.
include: "workflow/rules/until.smk"

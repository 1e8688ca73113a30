# `--until` for the run-level rules: train_model, halve_steps, generate_samples, compute_metrics.
#
# Snakemake 9 never readies a job that depends on an --until job (snakemake/dag.py, DAG.finish:
# a finished job's dependents are counted down only when the finished job is not an --until
# job). Training jobs chain here: a fine-tuning run and stage 1 start from another run's
# checkpoint (init_from), each halving from the previous one. So `--until train_model` used to
# train every first run, then stop with "Out of jobs ready to be started" before the fine-tuning
# runs, and `--until halve_steps` after the first halving of each chain. Nothing in how the
# inputs are declared can avoid it: a chain of jobs of one rule is an --until job's dependent.
#
# What --until asks for is "every job of these rules that the targets need, and what they need,
# nothing downstream". For these four rules that is a set of files this Snakefile can name, so
# just before Snakemake creates its DAG (the DAG settings do not exist while the Snakefile is
# parsed) the --until is replaced by those files as targets, which Snakemake schedules as any
# target: chained jobs run in order. The files are those of the runs of the named targets (all,
# a study, train, ...); a file target with one of these --until rules is refused (ask for the
# file you want instead), as is a mix with an --until this does not cover.
UNTIL_OUTPUTS = {
    "train_model": lambda run: [f"{RESULTS}/{run}/train/summary.json"],
    "halve_steps": lambda run: [
        f"{RESULTS}/{run}/halving/n{n}/ckpt.pt" for n in halvings_of(run)
    ],
    "generate_samples": lambda run: [
        f"{RESULTS}/{run}/samples/{ckpt}/{name}/images.npz"
        for ckpt, name in sample_sets_of(run)
    ],
    "compute_metrics": metrics_of,
}
# The named targets that do not stand for one study: each covers every run of the tier.
WHOLE_TIER_TARGETS = {"all", "frontier", "tables", "figures", "train", "samples"}


def runs_of_targets(targets):
    """The runs whose jobs the named `targets` need (every run for the default target)."""
    if not targets:
        return list(TIER.runs)
    runs = []
    for target in sorted(targets):
        if target in WHOLE_TIER_TARGETS:
            return list(TIER.runs)
        if target not in STUDIES:
            raise ValueError(
                f"--until {' '.join(sorted(UNTIL_OUTPUTS))} takes named targets "
                f"({', '.join(sorted(WHOLE_TIER_TARGETS | set(STUDIES)))}), not {target!r}; "
                f"for one run's training ask for its file instead, e.g. "
                f"snakemake {RESULTS}/<run>/train/summary.json"
            )
        runs += [run for run in runs_of_study(target) if run not in runs]
    return runs


def until_as_targets(settings):
    """Replace `settings.until` (run-level rules) by the files it stands for, as targets."""
    until = set(settings.until)
    if not until & set(UNTIL_OUTPUTS) or settings.target_jobs:  # a cluster job's own Snakemake
        return
    other = sorted(until - set(UNTIL_OUTPUTS))
    if other:
        raise ValueError(
            f"--until {' '.join(sorted(until))}: {', '.join(other)} cannot be combined with "
            f"{', '.join(sorted(until & set(UNTIL_OUTPUTS)))}: --until takes either run-level "
            f"rules ({', '.join(sorted(UNTIL_OUTPUTS))}) or other rules and files; run them as "
            "separate commands (a file target goes before --until, or after --)"
        )
    runs = runs_of_targets(settings.targets)
    files = [path for rule in sorted(until) for run in runs for path in UNTIL_OUTPUTS[rule](run)]
    settings.targets = frozenset(files)
    settings.until = frozenset()


def _prepare_dag_with_until_as_targets(*args, prepare=workflow._prepare_dag, **kwargs):
    until_as_targets(workflow.dag_settings)
    return prepare(*args, **kwargs)


# Snakemake 9.27 (pinned) creates every DAG in Workflow._prepare_dag, after it has set
# workflow.dag_settings; tests/workflow/test_until.py fails if a new version changes that.
workflow._prepare_dag = _prepare_dag_with_until_as_targets

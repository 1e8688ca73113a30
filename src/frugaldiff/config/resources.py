"""Per-rule-kind job resources: what a tier's `resources:` block sizes for Snakemake and SLURM.

Kept apart from the run sections because resources never change what a run computes: they are
read by the workflow (workflow/rules/*.smk: job_resources), not by the library, and a run's
resolved config holds none of them.
"""

from dataclasses import dataclass

# The rule kinds a tier's `resources:` block can size (workflow/rules/*.smk: job_resources).
RESOURCE_KINDS = ("default", "prepare", "encode", "train", "sample", "evaluate")


@dataclass(frozen=True)
class ResourceSpec:
    """Per-job resources for one rule kind; the rules hand them to Snakemake, the profile to SLURM.

    `runtime` is the first attempt's limit; attempt a gets a·runtime (a job that hit its limit
    resumes from its state, so each retry finishes more). SLURM sends SIGTERM
    `signal_before_limit_s` seconds before the limit (sbatch --signal) so the job saves state.
    """

    mem_mb: int = 2000
    runtime: int = 30  # minutes, first attempt
    cpus: int = 1
    gpus: int = 0
    gpu_model: str | None = None  # e.g. "a100": sbatch --gpus=<model>:<gpus>
    signal_before_limit_s: int = 120

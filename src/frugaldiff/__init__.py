"""frugaldiff: a reproducibility harness for efficient diffusion models.

Three studies (SpeeD, MicroDiT masking, guided distillation) share one diffusion core, one
training loop and one evaluation protocol; the Snakemake DAG in the project root wires them.
"""

__version__ = "0.1.0"

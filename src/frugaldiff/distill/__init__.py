"""Guided distillation (Meng et al., arXiv 2210.03142) with progressive halving (Salimans & Ho,
arXiv 2202.00512): stage-1 and stage-2 objectives, their frozen teacher, and student samplers.
"""

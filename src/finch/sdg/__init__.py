"""Synthetic data generation (the LAB method): a teacher turns each leaf's seed examples into judged samples.

Entry points: `load_pipeline`, `generate_dataset`, `GenerateOptions`, `list_datasets`, `load_dataset`.
"""

from finch.sdg.dataset import generate_dataset, list_datasets, load_dataset
from finch.sdg.generate import GenerateOptions
from finch.sdg.pipeline import load_pipeline

__all__ = ["GenerateOptions", "generate_dataset", "list_datasets", "load_dataset", "load_pipeline"]

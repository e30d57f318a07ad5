"""The taxonomy: InstructLab-compatible qna.yaml leaves, checked with line-precise errors.

Entry points for other stages: `check_taxonomy`, `sample_taxonomy_dir`, `diff_leaves`, `new_leaf`, `load_documents`
for a valid knowledge leaf's documents, `hold_out` for the seed examples that are a leaf's test set, and
`seed_rows` for the seed examples as chat rows.
"""

from finch.taxonomy.check import (
    LeafResult,
    TaxonomyReport,
    check_taxonomy,
    sample_taxonomy_dir,
)
from finch.taxonomy.diff import diff_leaves
from finch.taxonomy.documents import DocumentSource, SourceDocument, load_documents
from finch.taxonomy.holdout import hold_out
from finch.taxonomy.scaffold import new_leaf
from finch.taxonomy.schema import Knowledge, Skill
from finch.taxonomy.seed_rows import seed_rows, split_seed_rows, write_seed_dataset

__all__ = [
    "DocumentSource",
    "Knowledge",
    "LeafResult",
    "Skill",
    "SourceDocument",
    "TaxonomyReport",
    "check_taxonomy",
    "diff_leaves",
    "hold_out",
    "load_documents",
    "new_leaf",
    "sample_taxonomy_dir",
    "seed_rows",
    "split_seed_rows",
    "write_seed_dataset",
]

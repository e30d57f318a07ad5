"""The taxonomy: InstructLab-compatible qna.yaml leaves, checked with line-precise errors.

Entry points for other stages: `check_taxonomy`, `sample_taxonomy_dir`, `diff_leaves`, `new_leaf`, `load_documents`
for a valid knowledge leaf's documents, and `hold_out` for the seed examples that are a leaf's test set.
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
]

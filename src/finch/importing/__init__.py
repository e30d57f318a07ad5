"""Data a user already has, made a finch dataset: chat rows in the formats peers use (Alpaca, ShareGPT, messages,
prompt/completion, CSV), scrubbed of personal identifiers, deduplicated, split, and checked against the test rows
and the taxonomy's held-out questions.

Entry points: `import_dataset` with `ImportOptions`; `ImportRejected` lists the rows that cannot be read.
"""

from finch.importing.formats import FORMATS
from finch.importing.run import ImportOptions, ImportRejected, import_dataset

__all__ = ["FORMATS", "ImportOptions", "ImportRejected", "import_dataset"]

"""Protocol files: the frozen, hashed contract between pair generation and the evaluator.

A protocol is one canonical JSON file (format reference: ``docs/protocols.md``) holding every
image a benchmark uses, with the source file's sha256 and, for synthetic images, the frozen
geometry (mask polygon, colour, ROI box, output size), plus every pair and how they were made.
Its ``digest`` (sha256 of the canonical JSON without the ``digest`` key) names it: the protocol
id ``name@<first 12 hex digits>`` is what reports cite.

- :func:`freeze` turns a pair set into a validated protocol dict; :func:`write_protocol` writes
  it; :func:`load_protocol` refuses anything edited, re-formatted or inconsistent.
- :func:`refreeze` gives a protocol new metadata (citation, description, name), raising its
  version and recording the one it supersedes; :func:`matches` tells whether a cited id or
  digest names a protocol or one it supersedes (same images and pairs).
- :func:`verify` checks a copy of the data against the recorded source hashes.
- :func:`render_image` / :func:`render_protocol` rebuild the evaluation images from the frozen
  geometry, byte-identical on any machine holding the same source files.

One module per job: ``schema`` (key lists, :func:`validate`), ``digests`` (canonical bytes,
digest, id), ``store`` (freeze, write, load), ``lineage`` (refreeze, matches), ``sources``
(source files under a data root, the checked reader), ``verification`` (verify, open),
``render`` and ``summary`` (show). This
package re-exports their public names, so ``from mfrbench.protocol import X`` keeps working;
the modules import each other directly, never through this file.
"""

from mfrbench.protocol.digests import canonical_bytes, compute_digest, content_digest, protocol_id
from mfrbench.protocol.lineage import cited_ids, matches, next_version, refreeze
from mfrbench.protocol.render import (
    INDEX_NAME,
    INDEX_SCHEMA,
    RENDER_FORMATS,
    RenderReport,
    output_files,
    render_image,
    render_protocol,
)
from mfrbench.protocol.schema import (
    DATASET_KEYS,
    FACE_KEYS,
    FACE_STATUSES,
    GENERATION_KEYS,
    IMAGE_KEYS,
    MIX_VARIANT,
    OPTIONAL_IMAGE_KEYS,
    OPTIONAL_TOP_KEYS,
    PAIR_KEYS,
    PAIR_TYPES,
    POINTS5_SOURCES,
    SCHEMA,
    SCHEMA_VERSION,
    SPLITS,
    SUPERSEDED_KEYS,
    TOP_KEYS,
    validate,
)
from mfrbench.protocol.sources import load_source
from mfrbench.protocol.store import freeze, load_protocol, write_protocol
from mfrbench.protocol.summary import show
from mfrbench.protocol.verification import OpenedProtocol, VerifyReport, open_protocol, verify

__all__ = [
    "DATASET_KEYS",
    "FACE_KEYS",
    "FACE_STATUSES",
    "GENERATION_KEYS",
    "IMAGE_KEYS",
    "INDEX_NAME",
    "INDEX_SCHEMA",
    "MIX_VARIANT",
    "OPTIONAL_IMAGE_KEYS",
    "OPTIONAL_TOP_KEYS",
    "PAIR_KEYS",
    "PAIR_TYPES",
    "POINTS5_SOURCES",
    "RENDER_FORMATS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SPLITS",
    "SUPERSEDED_KEYS",
    "TOP_KEYS",
    "OpenedProtocol",
    "RenderReport",
    "VerifyReport",
    "canonical_bytes",
    "cited_ids",
    "compute_digest",
    "content_digest",
    "freeze",
    "load_protocol",
    "load_source",
    "matches",
    "next_version",
    "open_protocol",
    "output_files",
    "protocol_id",
    "refreeze",
    "render_image",
    "render_protocol",
    "show",
    "validate",
    "verify",
    "write_protocol",
]

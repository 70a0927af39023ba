"""Dataset preparation: raw videos, frame folders and manifests in, FOMM-layout training sets out.

``prepare_dataset`` reads the inputs (:mod:`.sources`), cleans and crops each one in parallel worker
processes (:mod:`.worker`: :mod:`.clean`, :mod:`.shots`, :mod:`.identity`), then clusters identities, splits
by identity and writes ``metadata.json`` (:mod:`.assemble`, :mod:`.splits`, :mod:`.metadata`).
"""

from enliven.prepare.assemble import PrepareSummary, SplitCounts
from enliven.prepare.run import prepare_dataset
from enliven.prepare.splits import SplitRatios

__all__ = ["PrepareSummary", "SplitCounts", "SplitRatios", "prepare_dataset"]

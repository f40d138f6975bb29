"""The hardware families by id (the spec loader builds chips from this registry)."""

from __future__ import annotations

from models._interface import Chip

from ._asic import CgraSpec, DataflowSpec, ImcSpec, SramChipletSpec, SystolicSpec
from ._simt import SimtSpec

# family id → spec class (each a subclass of models.Chip)
FAMILIES: dict[str, type[Chip]] = {
    cls.family: cls for cls in (SimtSpec, SystolicSpec, ImcSpec, DataflowSpec, SramChipletSpec, CgraSpec)
}

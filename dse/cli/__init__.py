"""The ``inferbench`` command line (the top layer: it may import every other)."""

from ._main import build_parser as build_parser
from ._main import main as main
from ._main import main_exit as main_exit

"""The ``faceage`` command line: the parser, the CUSP commands and the folder loop (``main``), the
AgingMapGAN and map commands (``amgan``), where inputs are read and outputs written (``paths``)."""

from faceage.cli.main import main

__all__ = ["main"]

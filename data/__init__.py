"""The embedded real data sets (``shopgym.data``), each folder with its own notice.

The files are installed with the package so that a fresh clone or wheel fits its
shoppers on real behaviour with no download. Their licence terms are in the
``NOTICE.md`` of each folder; they are not covered by shopgym's code licence.
"""

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """Path of an embedded data file, e.g. ``data_path("movielens-small", "ratings.csv.gz")``."""
    return Path(str(files(__name__).joinpath(*parts)))

"""Where a checkout's files live, whatever the working directory: datasets and recipes.

    dataset_dir("shakespeare_char")              -> <checkout>/data/shakespeare_char
    dataset_dir("shakespeare_char", "my/bins")   -> my/bins  (an explicit folder, as given)
    recipe_path("config/movie_reviews_lm.toml")  -> ./config/... if it exists, else <checkout>/...

The checkout is the folder that holds the minigpt package, as `pip install -e .` leaves it. A copy
installed into site-packages has no data/ beside it; then the working directory's data/ is used.
"""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """The folder of the datasets: the checkout's data/, else ./data."""
    checkout_data = CHECKOUT / "data"
    return checkout_data if checkout_data.is_dir() else Path("data")


def dataset_dir(dataset: str, data_dir: str | Path = "") -> Path:
    """`data_dir` when given, else data/<dataset> under `data_root()`."""
    return Path(data_dir) if str(data_dir) else data_root() / dataset


def recipe_path(path: str | Path) -> Path:
    """A config file as given when it exists from here (or is absolute), else in the checkout."""
    path = Path(path)
    return path if path.exists() or path.is_absolute() else CHECKOUT / path

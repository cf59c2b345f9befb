"""Fixtures shared by the training tests: one tiny dataset per module, and one thread."""

import pytest

from tests.tiny_models import one_thread
from tests.train.fixtures import make_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def module_one_thread():
    """One thread for a whole module of tiny in-process runs (see tests.tiny_models.one_thread)."""
    with one_thread():
        yield

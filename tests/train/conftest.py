"""Fixtures shared by the training tests: one tiny dataset per module, one thread for tiny
models, and the default threads for the tests of exact repetition."""

import pytest

from tests.tiny_models import DEFAULT_THREADS, one_thread, threads
from tests.train.fixtures import make_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def module_one_thread():
    """One thread for a whole module of tiny in-process runs (see tests.tiny_models.one_thread)."""
    with one_thread():
        yield


@pytest.fixture
def default_threads():
    """The process's default thread count for one test, inside a module pinned to one thread:
    tests that prove exact repetition must meet the multi-thread kernels users run."""
    with threads(DEFAULT_THREADS):
        yield

from __future__ import annotations

import threading
import time

import pytest

from shelfwise.errors import IndexStateError
from shelfwise.search.locking import IndexLock


def test_a_writer_excludes_another_holder_of_the_same_directory(tmp_path):
    first, second = IndexLock(tmp_path / "idx"), IndexLock(tmp_path / "idx")  # as two processes would
    order = []

    def reader():
        with second.hold(shared=True):
            order.append("reader")

    with first.hold():
        with first.hold(shared=True):  # re-entrant: the holder's own reload does not wait for itself
            pass
        thread = threading.Thread(target=reader)
        thread.start()
        time.sleep(0.2)
        order.append("writer done")
    thread.join(5)
    assert order == ["writer done", "reader"]


def test_an_index_directory_that_is_a_file_says_so(tmp_path):
    (tmp_path / "idx").write_text("x")
    with pytest.raises(IndexStateError, match="--rebuild"), IndexLock(tmp_path / "idx").hold():
        pass

"""The intra-op thread count: --threads/ABLATE_THREADS, else OMP_NUM_THREADS, else the free CPUs."""

from __future__ import annotations

import pytest

from ablate.errors import AblateError
from ablate.threads import ThreadChoice, choose_threads, worker_threads


@pytest.mark.parametrize("cores, load, count", [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.2, 1), (2, 5.0, 1), (16, 3.6, 12), (16, 3.4, 13), (1, 0.0, 1)])
def test_the_machine_choice_is_the_cpus_other_processes_leave(cores, load, count):
    choice = choose_threads({}, cores, load)
    assert choice == ThreadChoice(count, f"{cores} CPUs, load {load:.1f} from other processes")


def test_a_set_count_wins_over_the_machine():
    assert choose_threads({"ABLATE_THREADS": "3"}, 2, 5.0) == ThreadChoice(3, "ABLATE_THREADS=3")
    assert choose_threads({"OMP_NUM_THREADS": "1"}, 16, 0.0) == ThreadChoice(1, "OMP_NUM_THREADS=1")
    assert choose_threads({"OMP_NUM_THREADS": "4,2"}, 16, 0.0) == ThreadChoice(4, "OMP_NUM_THREADS=4,2")
    both = {"ABLATE_THREADS": "2", "OMP_NUM_THREADS": "1"}
    assert choose_threads(both, 16, 0.0) == ThreadChoice(2, "ABLATE_THREADS=2")


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_count_is_one_clear_error(value):
    with pytest.raises(AblateError, match=rf"ABLATE_THREADS='{value}': the number of threads must be a whole number >= 1"):
        choose_threads({"ABLATE_THREADS": value}, 2, 0.0)


def test_workers_share_the_chosen_count_unless_it_was_set(monkeypatch):
    from ablate import threads

    monkeypatch.delenv("ABLATE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "current_threads", lambda: ThreadChoice(5, "test"))
    assert worker_threads(2) == {"ABLATE_THREADS": "2"}
    assert worker_threads(8) == {"ABLATE_THREADS": "1"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert worker_threads(2) == {}

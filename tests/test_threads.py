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


@pytest.mark.parametrize("value", ["0", "two", "-1", "1025", "100000000000000000000"])
def test_a_bad_count_is_one_clear_error(value):
    with pytest.raises(AblateError, match=rf"ABLATE_THREADS='{value}': the number of threads must be a whole number "
                                          "from 1 to 1024"):
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


STAT_BEFORE = """cpu  300 0 100 1000 0 0 0 0 0 0
cpu0 200 0 50 400 0 0 0 0 0 0
cpu1 100 0 50 600 0 0 0 0 0 0
intr 12345
"""
# 100 ticks later on each CPU: cpu0 90 busy (80 user, 10 system), cpu1 10 busy and 5 iowait (idle)
STAT_AFTER = """cpu  390 0 110 1085 5 0 0 0 0 0
cpu0 280 0 60 410 0 0 0 0 0 0
cpu1 110 0 50 685 5 0 0 0 0 0
intr 12399
"""


def test_busy_cpus_are_read_from_proc_stat_ticks():
    from ablate.threads import busy_between, cpu_times

    before, after = cpu_times(STAT_BEFORE), cpu_times(STAT_AFTER)
    assert before == {0: (250, 650), 1: (150, 750)} and after[1] == (160, 850)
    assert busy_between(before, after, [0, 1]) == pytest.approx(0.9 + 0.1)
    assert busy_between(before, after, [1]) == pytest.approx(0.1)  # only the CPUs this process may use
    assert busy_between(before, before, [0, 1]) == 0.0  # no time passed: nothing known to be busy


def test_the_choice_reads_the_load_now_not_the_lagging_average(monkeypatch):
    """Right after two busy processes end, the 1-minute average still says 2: the CPUs are free."""
    from ablate import threads

    monkeypatch.delenv("ABLATE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.0, 1.5, 0.8))
    monkeypatch.setattr(threads, "busy_cpus", lambda cpus: 0.1)
    assert threads.machine_choice() == ThreadChoice(2, "2 CPUs, load 0.1 from other processes")
    monkeypatch.setattr(threads, "busy_cpus", lambda cpus: None)  # no /proc/stat: the average it is
    assert threads.machine_choice().count == 1

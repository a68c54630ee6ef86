"""ProcessWatch on real processes: a call ends when a watched process ends, whatever the signal dispositions, and
how it ended is told apart (a signal, or an exit status) whether the watch or another path noticed first."""

import multiprocessing
import os
import signal
import threading
import time

import psutil
import pytest

from stages.engines.process_watch import ProcessEnded, ProcessWatch, exit_code


def _sleep() -> None:
    time.sleep(60)


def _exit_three() -> None:
    os._exit(3)


@pytest.fixture
def process():
    started = []

    def start(target):
        child = multiprocessing.get_context("fork").Process(target=target, name="EngineCore")
        child.start()
        started.append(child)
        return child

    yield start
    for child in started:
        if child.is_alive():
            child.kill()
        child.join()


@pytest.fixture
def sigint_ignored():
    """SIGINT ignored, as in a background job of a shell, under nohup, setsid or a batch scheduler."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_killed_process_ends_the_watched_call_at_once_and_is_named(process, sigint_ignored):
    child = process(_sleep)
    watch = ProcessWatch([child])
    threading.Timer(0.5, os.kill, (child.pid, signal.SIGKILL)).start()
    started = time.monotonic()
    with pytest.raises(ProcessEnded, match=r"^its process EngineCore was killed \(SIGKILL\)$"):
        watch.call(lambda: time.sleep(30))  # a call that would wait long after its process died
    assert time.monotonic() - started < 10
    assert watch.ended == "its process EngineCore was killed (SIGKILL)" and watch.signalled
    assert watch.busy  # the call was left behind: its engine is not to be used again


def test_a_watched_call_gives_its_result_or_its_exception(process):
    watch = ProcessWatch([process(_sleep)])
    assert watch.call(lambda: 41 + 1) == 42
    with pytest.raises(ValueError, match="refused"):
        watch.call(lambda: int("refused"))
    assert watch.ended is None and not watch.busy


def test_ctrl_c_still_ends_the_wait_and_leaves_the_call_behind(process):
    watch = ProcessWatch([process(_sleep)])
    # Ctrl-C as an interactive shell delivers it, also where the suite runs as a background job (SIGINT ignored).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            watch.call(lambda: time.sleep(5))
    finally:
        signal.signal(signal.SIGINT, before)
    assert watch.ended is None and watch.busy


def test_check_names_an_end_another_path_noticed_first(process):
    child = process(_exit_three)
    child.join()
    watch = ProcessWatch([child])
    watch.check()
    assert watch.ended == "its process EngineCore exited with status 3" and not watch.signalled
    alive = ProcessWatch([process(_sleep)])
    alive.check(wait=0.1)
    assert alive.ended is None


def test_the_exit_status_survives_another_thread_reaping_the_process_at_once(process):
    # vLLM's monitor thread waits on the same sentinel: whichever reaps the process, both read its status.
    for _ in range(30):
        child = process(_sleep)
        other = threading.Thread(target=child.join)
        other.start()
        os.kill(child.pid, signal.SIGKILL)
        assert exit_code(child) == -signal.SIGKILL
        other.join()


def _stubborn_with_a_child(ready) -> None:
    """Ignore SIGTERM, as vLLM's engine core defers it while it starts, and start a worker that ignores it too."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker = multiprocessing.get_context("fork").Process(target=_sleep, name="Worker")
    worker.start()  # forked after SIG_IGN: it ignores SIGTERM as well
    ready.put(worker.pid)
    time.sleep(60)


def test_an_interrupted_start_ends_the_processes_it_started_and_their_children():
    """A start that blocks where a signal cannot reach it (vLLM's ready-wait) is left at the interruption; the
    process it started and that one's worker, both ignoring SIGTERM, are killed."""
    context = multiprocessing.get_context("fork")
    ready = context.Queue()
    started: list = []

    def start() -> None:
        child = context.Process(target=_stubborn_with_a_child, args=(ready,), name="EngineCore")
        child.start()
        started.append(child)
        time.sleep(30)  # the start blocks on

    workers: list[int] = []

    def interrupt_once_the_worker_runs() -> None:
        workers.append(ready.get(timeout=20))
        signal.setitimer(signal.ITIMER_REAL, 0.5)  # SIGALRM on the main thread, as Ctrl-C or SIGTERM come

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupted)
    try:
        watch = ProcessWatch([])
        threading.Thread(target=interrupt_once_the_worker_runs, daemon=True).start()
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            watch.start(start)
        waited = time.monotonic() - began
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert waited < 10  # the interruption's 0.5 s, and no wait for the 30 s start
    (child,) = started
    assert child.exitcode == -signal.SIGKILL  # ignored SIGTERM, so killed, and reaped
    (worker,) = workers
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE

"""Process-wide state lives in bids_app/runtime.py only; its helpers restore what they change."""

from __future__ import annotations

import ast
import ctypes
import gc
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from bids_app import runtime

PACKAGE = Path(__file__).resolve().parents[1] / "bids_app"
#: Packages of pure science: they get threads, seeds and process pools from their caller.
SCIENCE = ("preprocessing", "pretrained", "features", "models", "deep", "statistics")
#: ``os`` functions that read or change the environment.
_OS_ENVIRONMENT = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
#: Calls that change process-wide state, by their last attribute name.
_PROCESS_CALLS = {
    "mallopt",
    "malloc_trim",
    "set_num_threads",
    "set_num_interop_threads",
    "set_ants_deterministic",
    "update_config",
    "update_logging",
    "use_deterministic_algorithms",
    "freeze",
    "unfreeze",
    "prctl",
}
#: Functions that change process-wide state, by their full dotted name.
_PROCESS_FUNCTIONS = {"signal.signal", "signal.siginterrupt", "signal.pthread_sigmask"}
#: Calls that seed a process-wide random stream (fine inside ``with torch.random.fork_rng()``).
_GLOBAL_SEEDS = {
    "torch.manual_seed",
    "torch.cuda.manual_seed",
    "torch.cuda.manual_seed_all",
    "np.random.seed",
    "numpy.random.seed",
    "random.seed",
}


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a chain of names and attributes, '' otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _inside_fork_rng(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` runs inside a ``with ...fork_rng(...)`` block."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call)
            and _dotted(item.context_expr.func).endswith("fork_rng")
            for item in node.items
        ):
            return True
    return False


def process_state_uses(source: str) -> list[tuple[int, str]]:
    """Lines of ``source`` that read or change the environment or process-wide library state.

    Examples
    --------
    >>> process_state_uses("import os\\nos.environ['A'] = '1'\\nx = os.path.join('a')")
    [(2, 'os.environ')]
    >>> process_state_uses("import matplotlib\\nmatplotlib.use('Agg')")
    [(2, 'matplotlib.use')]
    >>> process_state_uses("with torch.random.fork_rng():\\n    torch.manual_seed(1)")
    []
    >>> process_state_uses("torch.manual_seed(1)\\ng = torch.Generator().manual_seed(1)")
    [(1, 'torch.manual_seed')]
    """
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                (node.lineno, f"os.{a.name}") for a in node.names if a.name in _OS_ENVIRONMENT
            ]
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name.startswith("os.") and node.attr in _OS_ENVIRONMENT:
                found.append((node.lineno, name))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if (
                name in ("matplotlib.use", *_PROCESS_FUNCTIONS)
                or name.rpartition(".")[2] in _PROCESS_CALLS
            ):
                found.append((node.lineno, name))
            elif name in _GLOBAL_SEEDS and not _inside_fork_rng(node, parents):
                found.append((node.lineno, name))
    return found


def test_only_runtime_touches_process_state():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "runtime.py":
            continue
        for line, name in process_state_uses(path.read_text()):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
    assert not offenders, "process state outside bids_app/runtime.py:\n" + "\n".join(offenders)


def test_science_does_not_import_runtime():
    offenders = []
    for package in SCIENCE:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if "bids_app.runtime" in names:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, offenders


def test_environment_is_restored(monkeypatch):
    monkeypatch.setenv("NEUROSTRAT_KEPT", "before")
    monkeypatch.delenv("NEUROSTRAT_NEW", raising=False)
    with (
        pytest.raises(RuntimeError),
        runtime.environment(NEUROSTRAT_KEPT="inside", NEUROSTRAT_NEW="1"),
    ):
        assert os.environ["NEUROSTRAT_KEPT"] == "inside"
        assert os.environ["NEUROSTRAT_NEW"] == "1"
        raise RuntimeError("the block fails")
    assert os.environ["NEUROSTRAT_KEPT"] == "before"
    assert "NEUROSTRAT_NEW" not in os.environ


def test_ants_seed_is_restored(monkeypatch):
    monkeypatch.delenv(runtime.ANTS_SEED, raising=False)
    with runtime.ants_seed(7):
        assert os.environ[runtime.ANTS_SEED] == "7"
    assert runtime.ANTS_SEED not in os.environ


def _affine_parameters_with_seed_zero(repeats: int) -> list[list[float]]:
    """Register two noisy blobs ``repeats`` times under ``ants_seed(0)`` (module level: pickled)."""
    import ants

    rng = np.random.default_rng(0)
    grid = np.indices((40, 40, 40)).astype(float)
    blob = np.exp(-(((grid - 20) / 9) ** 2).sum(axis=0))
    fixed = ants.from_numpy(blob + 0.2 * rng.random(blob.shape))
    moving = ants.from_numpy(np.roll(blob, 3, axis=0) + 0.2 * rng.random(blob.shape))
    parameters = []
    for _ in range(repeats):
        with runtime.ants_seed(0):
            result = ants.registration(fixed, moving, type_of_transform="Affine")
        parameters.append(ants.read_transform(result["fwdtransforms"][0]).parameters.tolist())
        time.sleep(1.1)  # a seed from the clock would change between the calls
    return parameters


def test_registrations_repeat_with_seed_zero():
    # ANTs reads ANTS_RANDOM_SEED=0 as "seed from the clock": --seed 0 runs differed
    pytest.importorskip("ants")
    [parameters] = runtime.map_in_one_itk_thread(_affine_parameters_with_seed_zero, [(3,)])
    assert parameters[0] == parameters[1] == parameters[2]


def test_limit_threads_sets_every_library(monkeypatch):
    torch = pytest.importorskip("torch")
    for name in runtime.THREAD_VARIABLES:
        monkeypatch.setenv(name, "5")  # monkeypatch restores the variables afterwards
    before = torch.get_num_threads()
    try:
        runtime.limit_threads(1)
        assert all(os.environ[name] == "1" for name in runtime.THREAD_VARIABLES)
        assert torch.get_num_threads() == 1
        assert runtime.itk_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.delenv(runtime.ITK_THREADS)
    assert runtime.itk_threads() is None


def test_configure_process(monkeypatch):
    import matplotlib
    import torch

    for name in (*runtime.THREAD_VARIABLES, runtime.ANTS_SEED, "NIPYPE_NO_ET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # keep this process's
    runtime.configure_process(1, seed=3)
    assert os.environ[runtime.ANTS_SEED] == "3"
    assert os.environ["NIPYPE_NO_ET"] == "1"
    assert os.environ[runtime.ITK_THREADS] == "1"
    assert matplotlib.get_backend().lower() == "agg"


def test_container_and_templateflow_come_from_the_environment(monkeypatch):
    for name in ("SINGULARITY_CONTAINER", "APPTAINER_CONTAINER", "NEUROSTRAT_CONTAINER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APPTAINER_CONTAINER", "/neurostrat.sif")
    assert runtime.detect_container() == "singularity"
    monkeypatch.setenv("TEMPLATEFLOW_HOME", "")
    assert runtime.templateflow_home() is None
    monkeypatch.setenv("TEMPLATEFLOW_HOME", "/templateflow")
    assert runtime.templateflow_home() == "/templateflow"


def _resident_bytes() -> int:
    """This process's resident memory (Linux)."""
    return os.sysconf("SC_PAGE_SIZE") * int(Path("/proc/self/statm").read_text().split()[1])


def _touch_and_free(libc: ctypes.CDLL, size: int) -> int:
    """malloc ``size`` bytes, write them, free them; the resident growth that remains."""
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    before = _resident_bytes()
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    return _resident_bytes() - before


def _heap_growth_without_and_with_heap_kept(size: int) -> tuple[int, int, int] | None:
    """Resident growth after a freed block: by default, inside ``heap_kept`` and after it.

    Module level: it runs in a fresh (spawned) process, whose heap no earlier test has shaped.
    ``None`` without glibc.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 (glibc only)
    except (AttributeError, OSError):
        return None
    by_default = _touch_and_free(libc, size)
    before = _resident_bytes()
    with runtime.heap_kept():
        kept = _touch_and_free(libc, size)
    return by_default, kept, _resident_bytes() - before


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux")
def test_heap_kept_keeps_freed_memory_until_the_block_ends():
    size = 64 * 2**20
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        growth = pool.apply(_heap_growth_without_and_with_heap_kept, (size,))
    if growth is None:
        pytest.skip("needs glibc")
    by_default, kept, after = growth
    assert by_default < size / 2  # glibc: its own mapping, unmapped at free
    assert kept > size / 2  # kept in the heap for the next filter
    assert after < size / 2  # malloc_trim gave it back


def _itk_threads_here() -> tuple[int, int | None]:
    """The process and its ITK thread count (module level: it is pickled)."""
    return os.getpid(), runtime.itk_threads()


def test_map_in_one_itk_thread(monkeypatch):
    monkeypatch.setenv(runtime.ITK_THREADS, "1")
    assert runtime.map_in_one_itk_thread(_itk_threads_here, [()]) == [(os.getpid(), 1)]
    monkeypatch.setenv(runtime.ITK_THREADS, "2")
    results = runtime.map_in_one_itk_thread(_itk_threads_here, [(), ()], n_jobs=2)
    assert all(pid != os.getpid() and threads == 1 for pid, threads in results)
    assert os.environ[runtime.ITK_THREADS] == "2"


def test_frozen_gc():
    assert gc.get_freeze_count() == 0
    with runtime.frozen_gc():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_configure_nipype(tmp_path):
    from nipype import config as nipype_config

    runtime.configure_nipype(tmp_path, verbosity=0)
    assert nipype_config.get("execution", "crashdump_dir") == str(tmp_path / "crash")
    assert not nipype_config.getboolean("execution", "check_version")


def _convolve_in_forked_worker(queue) -> None:
    import torch

    runtime.start_forked_worker()
    convolution = torch.nn.Conv3d(2, 4, 3)
    queue.put(tuple(convolution(torch.ones(1, 2, 16, 16, 16)).shape))


def test_forked_worker_runs_torch_after_the_parent_did():
    # GNU OpenMP's pool does not survive fork: without start_forked_worker the child's first
    # parallel torch operation waits forever (the participant level's session workers hung so)
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.nn.Conv3d(2, 4, 3)(torch.ones(1, 2, 32, 32, 32))  # the parent's pool exists now
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_convolve_in_forked_worker, args=(queue,))
        child.start()
        child.join(60)
        hung = child.is_alive()
        if hung:
            child.kill()
        assert not hung, "the forked worker hung in torch"
        assert queue.get(timeout=5) == (1, 4, 14, 14, 14)
    finally:
        torch.set_num_threads(threads)


def test_stop_on_signals_raises_and_restores_the_handlers():
    before = {signum: signal.getsignal(signum) for signum in runtime.STOP_SIGNALS}
    with pytest.raises(runtime.Interrupted) as stopped, runtime.stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs before this ends
    assert (stopped.value.exit_code, stopped.value.signal_name) == (143, "SIGTERM")
    assert {signum: signal.getsignal(signum) for signum in runtime.STOP_SIGNALS} == before


def test_an_interrupt_swallowed_by_a_library_is_raised_again():
    with runtime.stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except BaseException:  # as nipype keeps a step's KeyboardInterrupt as its failure
            pass
        with pytest.raises(runtime.Interrupted) as again:
            runtime.raise_if_interrupted()
    assert again.value.exit_code == 130
    runtime.raise_if_interrupted()  # forgotten after the block

import json

import pytest

from spike_lib.core import blas


@pytest.fixture
def linux(monkeypatch):
    monkeypatch.setattr(blas.platform, "system", lambda: "Linux")


def test_find_openblas_takes_the_first_match(monkeypatch, linux):
    hits = {blas.PATTERNS[0]: ["/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"]}
    monkeypatch.setattr(blas.glob, "glob", lambda p: hits.get(p, []))
    assert blas.find_openblas() == "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"
    monkeypatch.setattr(blas.glob, "glob", lambda p: [])
    assert blas.find_openblas() is None


def test_not_linux_needs_no_fix(monkeypatch):
    monkeypatch.setattr(blas.platform, "system", lambda: "Darwin")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert blas.find_openblas() is None and not blas.needs_fix()


def test_status_and_warning_follow_ld_preload(monkeypatch, linux):
    monkeypatch.setenv("LD_PRELOAD", "/x/openblas-pthread/libblas.so.3")
    assert blas.preloaded() and not blas.needs_fix()
    monkeypatch.setenv("LD_PRELOAD", "")
    assert blas.needs_fix()
    with pytest.warns(RuntimeWarning, match="apt-get install libopenblas0-pthread"):
        blas.warn_if_slow()


def test_reexec_only_when_it_helps(monkeypatch, linux):
    calls = []
    monkeypatch.setattr(blas.os, "execve", lambda *a: calls.append(a))
    monkeypatch.setattr(blas, "find_openblas", lambda: "/lib/openblas-pthread/libblas.so.3")
    monkeypatch.setenv("LD_PRELOAD", "/lib/openblas-pthread/libblas.so.3")
    blas.reexec_with_openblas(["info"])
    assert calls == []  # already preloaded
    monkeypatch.setenv("LD_PRELOAD", "/lib/other.so")
    monkeypatch.setenv(blas.OPT_OUT, "1")
    blas.reexec_with_openblas(["info"])
    assert calls == []  # opted out
    monkeypatch.delenv(blas.OPT_OUT)
    blas.reexec_with_openblas(["info", "--json"])
    (_exe, argv, env), = calls
    assert argv[-3:] == ["spike_lib", "info", "--json"]
    assert env["LD_PRELOAD"] == "/lib/openblas-pthread/libblas.so.3 /lib/other.so"


def test_install_kernel_adds_preload_and_keeps_the_spec(tmp_path, monkeypatch):
    monkeypatch.setattr(blas, "find_openblas", lambda: "/lib/openblas-pthread/libblas.so.3")
    spec_path = tmp_path / "share/jupyter/kernels/python3/kernel.json"
    spec_path.parent.mkdir(parents=True)
    spec_path.write_text(json.dumps({"argv": ["python", "-m", "ipykernel_launcher"],
                                     "display_name": "Python 3", "language": "python"}))
    assert blas.install_kernel(tmp_path) == spec_path
    spec = json.loads(spec_path.read_text())
    assert spec["env"] == {"LD_PRELOAD": "/lib/openblas-pthread/libblas.so.3"}
    assert spec["display_name"] == "Python 3" and spec["argv"][0] == "python"


def test_usable_cores_follows_openblas_num_threads(monkeypatch):
    import os

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert blas.usable_cores() == 1
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "64")
    assert blas.usable_cores() == min(cores, 64)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "many")  # not a number: ignored
    assert blas.usable_cores() == cores


def test_mlx_blas_threads_sets_and_restores():
    handle = blas._preloaded_openblas()
    if handle is None:
        with blas.mlx_blas_threads(1):  # no preloaded OpenBLAS: a no-op
            pass
        return
    before = handle.openblas_get_num_threads()
    handle.openblas_set_num_threads(2)
    try:
        with blas.mlx_blas_threads(1):
            assert handle.openblas_get_num_threads() == 1
        assert handle.openblas_get_num_threads() == 2
    finally:
        handle.openblas_set_num_threads(before)

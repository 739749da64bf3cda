"""Third-party plug-ins through entry points: real importlib.metadata discovery, no pip.

Each test writes a <name>.dist-info/ folder (METADATA + entry_points.txt, what pip writes on
install) into tmp_path and puts tmp_path and the example package's source on sys.path.
"""

import importlib.metadata
import sys
from pathlib import Path

import pytest

from spike_lib.core import plugins
from spike_lib.train import plugin_checks, registry
from spike_lib.core.config import Config
from spike_lib.train.registry import PluginError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "spike_plugin_example"
EXAMPLE_EPS = {
    "spike_lib.neurons": {"alif": "spike_plugin_example.neurons:AdaptiveLIF"},
    "spike_lib.attention": {"mean_mixer": "spike_plugin_example.attention:CausalMeanMixer"},
    "spike_lib.tokenizers": {"bytes": "spike_plugin_example.tokenizer:ByteTokenizer"},
    "spike_lib.datasets": {"proverbs": "spike_plugin_example.data:proverbs"},
}
BROKEN_MODULE = '''
import numpy as np
from spike_lib.numpy_impl.neurons import LIF


class WrongShape(LIF):
    def forward(self, x):
        self.last_spk = (x[:-1] > 1).astype(x.dtype)
        return self.last_spk
'''


def write_dist_info(folder, name, eps):
    """A dist-info folder written by hand, as pip would: METADATA and entry_points.txt."""
    info = folder / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    text = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in e.items()) + "\n"
                   for g, e in eps.items())
    (info / "entry_points.txt").write_text(text)
    return info


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.setattr(plugins, "_TABLE", {k: dict(v) for k, v in plugins._TABLE.items()})
    # discovery is the point here: a shorter smoke run (test_registry runs the full gates)
    monkeypatch.setattr(plugin_checks, "SMOKE_STEPS", 12)
    monkeypatch.setattr(plugins, "_DISCOVERED", [])
    for mod in [m for m in sys.modules if m.split(".")[0] in ("spike_plugin_example", "broken")]:
        monkeypatch.delitem(sys.modules, mod)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    write_dist_info(tmp_path, "spike-plugin-example", EXAMPLE_EPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(FIXTURE))
    return tmp_path


def test_the_example_package_declares_what_the_tests_install():
    name, version, eps = registry.read_pyproject_entry_points(FIXTURE / "pyproject.toml")
    assert (name, version, eps) == ("spike-plugin-example", "0.1.0", EXAMPLE_EPS)


def test_importlib_metadata_finds_the_plugin(installed):
    found = importlib.metadata.entry_points(group="spike_lib.neurons")
    assert [(ep.name, ep.value) for ep in found if ep.dist.name == "spike-plugin-example"] == [
        ("alif", "spike_plugin_example.neurons:AdaptiveLIF")]
    kinds = sorted((k, ep.name, d) for k, ep, d in registry.entry_points())
    assert kinds == [("attention", "mean_mixer", "spike-plugin-example"),
                     ("dataset", "proverbs", "spike-plugin-example"),
                     ("neuron", "alif", "spike-plugin-example"),
                     ("tokenizer", "bytes", "spike-plugin-example")]


@pytest.fixture
def full_validation(monkeypatch):
    monkeypatch.setattr(plugin_checks, "SMOKE_STEPS", 30)


def test_discover_validates_and_registers_every_plugin(installed, full_validation):
    report = registry.discover()
    assert report["failed"] == [] and plugin_checks.SMOKE_STEPS == 30
    assert sorted(report["loaded"]) == sorted(
        (k, n, "spike-plugin-example") for k, n in
        [("neuron", "alif"), ("attention", "mean_mixer"), ("tokenizer", "bytes"),
         ("dataset", "proverbs")])
    origin = registry.describe("neuron")["neuron"]["alif"]
    assert origin == "entry point spike_plugin_example.neurons:AdaptiveLIF of spike-plugin-example"
    assert registry.get_tokenizer("bytes").encode("Hi") == [72, 105]
    assert len(registry.get_dataset("proverbs")("val")) == 2
    cfg = Config.tiny(neuron="alif", attention="mean_mixer")
    assert cfg.to_dict()["neuron"] == "alif"
    assert registry.discover()["loaded"] == []  # a second search finds nothing new


def test_an_unknown_name_searches_the_entry_points_once(installed):
    assert plugins._DISCOVERED == []
    cfg = Config.tiny(neuron="alif")  # no explicit discover(): the miss triggers it
    assert cfg.neuron == "alif" and plugins._DISCOVERED == [True]


def test_the_mlx_port_named_by_the_plugin_is_checked_and_used(installed):
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl.model import SpikeLLM

    registry.discover()
    assert plugins._TABLE["neuron"]["alif"]["mlx"] == "spike_plugin_example.mlx_neurons:AdaptiveLIF"
    model = SpikeLLM(Config.tiny(neuron="alif"))
    assert type(model.blocks[0].sn1).__module__ == "spike_plugin_example.mlx_neurons"


def test_discovery_from_folders_without_touching_sys_path(tmp_path):
    """discover(path=[dist-info folder, source folder]) loads a package that is not installed."""
    before = list(sys.path)
    info = registry.write_dist_info(*registry.read_pyproject_entry_points(
        FIXTURE / "pyproject.toml"), tmp_path)
    assert (info / "entry_points.txt").read_text().startswith("[spike_lib.neurons]\nalif = ")
    report = registry.discover(path=[tmp_path, FIXTURE])
    assert len(report["loaded"]) == 4 and report["failed"] == []
    assert sys.path == before and plugins._DISCOVERED == []
    assert registry.get("neuron", "alif").__name__ == "AdaptiveLIF"


def test_broken_plugins_are_reported_never_used(tmp_path, monkeypatch):
    (tmp_path / "broken.py").write_text(BROKEN_MODULE)
    write_dist_info(tmp_path, "spike-plugin-broken", {
        "spike_lib.neurons": {"lif": "broken:WrongShape", "wrong_shape": "broken:WrongShape",
                              "missing": "broken_missing.neurons:Nope"},
        "spike_lib.tokenizers": {"absent_attr": "broken:NoSuchTokenizer"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning) as warned:
        report = registry.discover()
    failed = {name: msg for _, name, msg in report["failed"]}
    assert report["loaded"] == [] and len(warned) == 4
    assert "clashes with the built-in neuron 'lif'" in failed["lif"]
    assert "spike-plugin-broken" in failed["lif"]
    assert failed["wrong_shape"].startswith("neuron 'wrong_shape' failed the shape check: input "
                                            "(T, B, N, C) = (4, 2, 3, 5) gave (3, 2, 3, 5)")
    assert ("entry point broken_missing.neurons:Nope in group spike_lib.neurons of "
            "spike-plugin-broken) failed to import: ModuleNotFoundError") in failed["missing"]
    assert "Fix the module:attr in the package's entry points" in failed["missing"]
    assert "AttributeError" in failed["absent_attr"]
    assert registry.names("neuron") == ["lif"] and "absent_attr" not in registry.names("tokenizer")
    assert registry.get("neuron", "lif").__module__ == "spike_lib.numpy_impl.neurons"  # never replaced
    with pytest.raises(ValueError, match="neuron='wrong_shape' is invalid"):
        Config.tiny(neuron="wrong_shape")
    with pytest.raises(PluginError, match="clashes with the built-in"):
        registry.discover(strict=True)


def test_two_packages_with_one_name_the_second_is_refused(tmp_path, monkeypatch):
    for pkg in ("spike-plugin-example", "spike-plugin-copy"):
        folder = tmp_path / pkg
        folder.mkdir()
        write_dist_info(folder, pkg, {"spike_lib.neurons": EXAMPLE_EPS["spike_lib.neurons"]})
    (tmp_path / "spike-plugin-copy" / "spike_plugin_copy-0.1.0.dist-info" /
     "entry_points.txt").write_text("[spike_lib.neurons]\nalif = spike_lib.numpy_impl.neurons:LIF\n")
    for pkg in ("spike-plugin-example", "spike-plugin-copy"):
        monkeypatch.syspath_prepend(str(tmp_path / pkg))
    monkeypatch.syspath_prepend(str(FIXTURE))
    with pytest.warns(RuntimeWarning, match="clashes with the one registered by entry point"):
        report = registry.discover()
    assert [n for _, n, _ in report["loaded"]] == ["alif"] and len(report["failed"]) == 1


def test_plugins_command_lists_and_loads(tmp_path, capsys):
    import json

    from spike_lib.cli import main

    registry.write_dist_info(*registry.read_pyproject_entry_points(FIXTURE / "pyproject.toml"),
                             tmp_path)
    assert main(["plugins", "--path", str(tmp_path), "--path", str(FIXTURE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (out["loaded"], out["failed"], out["neurons"]) == (4, 0, ["alif", "lif"])
    bad = tmp_path / "bad"
    bad.mkdir()
    registry.write_dist_info("spike-plugin-bad", "0.1",
                             {"spike_lib.datasets": {"corpus": "spike_plugin_example.data:proverbs"}},
                             bad)
    assert main(["plugins", "--path", str(bad), "--path", str(FIXTURE)]) == 0
    assert "FAILED dataset corpus: dataset name 'corpus' clashes with the built-in" in \
        capsys.readouterr().out
    assert main(["plugins", "--path", str(bad), "--path", str(FIXTURE), "--strict"]) == 2
    assert "error: dataset name 'corpus' clashes" in capsys.readouterr().err


def test_a_plugin_attention_trains_by_name(installed, tmp_path):
    """`train --attention mean_mixer` works once the package is installed."""
    from spike_lib.train import runs

    registry.discover()
    proverbs = registry.get_dataset("proverbs")
    out = tmp_path / "run"
    summary = runs.train_run(out, train_docs=proverbs("train"), val_docs=proverbs("val"),
                             config="tiny", attention="mean_mixer", tokenizer="char", steps=3,
                             batch_size=2, eval_every=3, val_tokens=16, warmup=1)
    saved = runs.read_run_config(out)
    assert saved["model"]["attention"] == "mean_mixer"
    assert summary["checkpoint_step"] == 3 and len(runs.read_log(out)) == 3
    with pytest.raises(ValueError, match="attention='nope' is invalid"):
        runs.train_run(tmp_path / "bad", attention="nope", steps=1)
    with pytest.raises(ValueError, match="has no save"):  # the example's tokenizer cannot
        runs.resolve_tokenizer("bytes")

"""Plug-ins by name: neurons, attention types, tokenizers and datasets, each validated before use.

    register_neuron("alif", AdaptiveLIF)      # validated, then Config(neuron="alif") builds it
    register_attention("mix", MeanMixer)      # Config(attention="mix")
    discover()                                # the same for every installed package's entry points
A neuron is a class (or factory) taking the LIF arguments of spike_lib.core.config.Config.lif_kwargs
(beta, threshold, reset, surrogate, surrogate_scale, detach_reset) and returning a NumPy Module
with forward/backward over time-first input (T, ...): subclass spike_lib.numpy_impl.neurons.LIF. An
attention is a factory (cfg, rng) -> a causal Module mapping (T, B, L, D) to (T, B, L, D).
A tokenizer is a factory () -> an object with encode, decode and vocab_size; a dataset a function
split -> list of documents {"text": ...}. Nothing that fails validation is ever registered: the
PluginError names the plug-in, the failed check and the fix. The registry is one explicit table
per kind in this module; names() lists it, unregister() and snapshot() undo changes.
Taught in: notebooks/10_toolkit.ipynb
"""

import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
import warnings
from pathlib import Path

from spike_lib.core import plugins
from spike_lib.core.plugins import (  # noqa: F401 - the tables live in core, re-exported here
    BACKENDS,
    BUILTIN,
    CONTEXT_ATTENTIONS,
    GROUPS,
    KINDS,
    PluginError,
    _check_kind,
    _resolve,
    build_attention,
    build_neuron,
    check_name,
    describe,
    get,
    get_dataset,
    names,
    set_discover,
    snapshot,
    temporarily,
    unregister,
)


def get_tokenizer(name):
    """A tokenizer instance by name (shipped or plug-in)."""
    from spike_lib.train.plugin_checks import as_tokenizer

    factory = get("tokenizer", name)
    return as_tokenizer(factory, plugins._TABLE["tokenizer"][name].get("args", ()))


# -- registering ---------------------------------------------------------------------------------
def _check_new(kind, name, replace):
    _check_kind(kind)
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"{kind} name {name!r} is invalid: use a Python identifier such as "
                          "'adaptive_lif' (it goes into configs and --set options)")
    old = plugins._TABLE[kind].get(name)
    if old is not None and old["origin"] == BUILTIN:
        raise PluginError(f"{kind} name {name!r} clashes with the built-in {kind} {name!r}: "
                          "choose another name")
    if old is not None and not replace:
        raise PluginError(f"{kind} name {name!r} clashes with the one registered by "
                          f"{old['origin']}: choose another name, or pass replace=True")


def register(kind, name, obj, mlx=None, replace=False, validate=True, origin="user") -> dict:
    """Validate obj (and its MLX port) as a `kind` plug-in, then register it under `name`.

    Returns the validation report (the numbers of each check). On a failed check nothing is
    registered (a replaced entry stays) and PluginError says which check failed and the fix.
    """
    from spike_lib.train import plugin_checks

    _check_new(kind, name, replace)
    entry = {"numpy": obj, "mlx": mlx, "origin": origin}
    report = {}
    with snapshot():  # the smoke run builds Config(neuron=name): register first, undo on failure
        plugins._TABLE[kind][name] = entry
        if validate:
            check = getattr(plugin_checks, f"validate_{kind}")
            report = check(obj, mlx=mlx, name=name) if mlx is not None else check(obj, name=name)
    return report


def register_neuron(name, cls, mlx=None, replace=False, validate=True) -> dict:
    """Register a neuron class (NumPy; mlx= its MLX port) after validating it."""
    return register("neuron", name, cls, mlx, replace, validate)


def register_attention(name, factory, mlx=None, replace=False, validate=True) -> dict:
    """Register an attention factory(cfg, rng) (NumPy; mlx= its MLX port) after validating it."""
    return register("attention", name, factory, mlx, replace, validate)


def register_tokenizer(name, factory, replace=False, validate=True) -> dict:
    """Register a tokenizer factory () -> tokenizer after a round-trip check."""
    return register("tokenizer", name, factory, None, replace, validate)


def register_dataset(name, fn, replace=False, validate=True) -> dict:
    """Register a dataset function split -> list of {"text": ...} documents after checking it."""
    return register("dataset", name, fn, None, replace, validate)


# -- entry points ---------------------------------------------------------------------------------
def _import_from(module, path):
    """Import `module` whose top-level package lives in one of the folders `path`."""
    top = module.split(".")[0]
    if top not in sys.modules:
        spec = importlib.machinery.PathFinder.find_spec(top, [str(p) for p in path])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {top!r} in {[str(p) for p in path]}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[top] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[top]
            raise
    return importlib.import_module(module)


def _load(ep, path):
    if path is None:
        return ep.load()
    obj = _import_from(ep.module, path)
    for part in (ep.attr or "").split("."):
        obj = getattr(obj, part) if part else obj
    return obj


def entry_points(path=None) -> list:
    """(kind, entry point, distribution name) of every spike_lib plug-in found.

    path=None searches sys.path (installed packages); a list of folders searches only those
    (a package's <name>.dist-info folder, as pip writes it, must be in one of them).
    """
    dists = importlib.metadata.distributions(**({} if path is None else
                                                {"path": [str(p) for p in path]}))
    found, seen = [], set()
    for dist in dists:
        dname = dist.metadata["Name"]
        for kind, group in GROUPS.items():
            for ep in dist.entry_points.select(group=group):
                if (kind, ep.name, ep.value) not in seen:
                    seen.add((kind, ep.name, ep.value))
                    found.append((kind, ep, dname))
    return found


def discover(path=None, strict=False) -> dict:
    """Load, validate and register every plug-in of the installed packages (or under `path`).

    Returns {"loaded": [(kind, name, distribution)], "failed": [(kind, name, message)]}. A
    plug-in that fails to import, clashes with a registered name or fails validation is
    reported (and warned about), never registered; strict=True raises the first failure.
    """
    if path is None:
        plugins._DISCOVERED.append(True)
    loaded, failed = [], []
    for kind, ep, dname in entry_points(path):
        origin = f"entry point {ep.value} of {dname}"
        old = plugins._TABLE[kind].get(ep.name)
        if old is not None and old["origin"] == origin:
            continue  # found before
        try:
            try:
                obj = _load(ep, path)
            except Exception as err:  # noqa: BLE001 - any import failure is reported
                raise PluginError(
                    f"{kind} plug-in {ep.name!r} (entry point {ep.value} in group "
                    f"{GROUPS[kind]} of {dname}) failed to import: {type(err).__name__}: {err}. "
                    "Fix the module:attr in the package's entry points or reinstall it") from None
            mlx = getattr(obj, "mlx_port", None) if kind in ("neuron", "attention") else None
            register(kind, ep.name, obj, mlx=mlx, origin=origin)
            loaded.append((kind, ep.name, dname))
        except PluginError as err:
            msg = str(err) if dname in str(err) else f"{err} (plug-in of {dname})"
            failed.append((kind, ep.name, msg))
            if strict:
                raise PluginError(msg) from None
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return {"loaded": loaded, "failed": failed}


def write_dist_info(name, version, entry_points_by_group, folder) -> Path:
    """Write <name>-<version>.dist-info/ (METADATA, entry_points.txt) into folder, as pip does.

    entry_points_by_group: {"spike_lib.neurons": {"alif": "pkg.mod:AdaptiveLIF"}, ...}. With
    the package's source folder, discover(path=[folder, source]) then finds it uninstalled.
    """
    norm = name.replace("-", "_")
    out = Path(folder) / f"{norm}-{version}.dist-info"
    out.mkdir(parents=True, exist_ok=True)
    (out / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                  encoding="utf-8")
    lines = []
    for group, eps in entry_points_by_group.items():
        lines += [f"[{group}]"] + [f"{k} = {v}" for k, v in eps.items()] + [""]
    (out / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    return out


def read_pyproject_entry_points(pyproject) -> tuple:
    """(name, version, {group: {name: value}}) of a pyproject.toml's spike_lib entry points."""
    import tomllib

    data = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))
    project = data.get("project", {})
    eps = {g: dict(v) for g, v in project.get("entry-points", {}).items()
           if g in GROUPS.values()}
    return project.get("name"), project.get("version"), eps


set_discover(discover)  # an unknown name in a Config searches the installed plug-ins once


# -- `python -m spike_lib plugins` ----------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--path", action="append", metavar="FOLDER",
                        help="search only these folders for <name>.dist-info and the plug-ins' "
                        "modules (repeatable); default: the installed packages")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 2) on the first plug-in that does not load or validate")


def run(args) -> dict:
    """Discover plug-ins, then list every registered name with where it came from."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failures are listed below instead
        report = discover(path=args.path, strict=args.strict)
    if not args.json:
        for kind, entries in describe().items():
            print(f"{kind}: " + ", ".join(f"{n} ({o})" for n, o in entries.items()))
        for kind, name, message in report["failed"]:
            print(f"FAILED {kind} {name}: {message}")
    return {"loaded": len(report["loaded"]), "failed": len(report["failed"]),
            **{f"{kind}s": names(kind) for kind in KINDS}}

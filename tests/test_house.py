"""The shape of the house: no import circle among the repo's own modules, sections that import only the core, a
launcher that names its section modules exactly, a core that builds artifacts without the job runner, and modules
of a few hundred lines.

The import graph is read from the source (ast), with imports inside functions as edges too: an import moved into
a function to dodge a cycle still closes it here.
"""
import ast
from pathlib import Path

import pytest

from relabel import launch

ROOT = Path(__file__).resolve().parents[1]
CORE = "relabel"
SECTIONS = ("pretrain", "eval_real", "robustness", "transfer", "multilabel_coco")
RESULTS = "results"
# What results/ may import of the sections today: the pretraining recipe that `--set key=value` is checked against
# (results.make.set_overrides). Everything else it reaches through the launcher's registry, never by import.
RESULTS_MAY_IMPORT = {"pretrain.config"}
# The runner side of the core: the experiment registry and job runner. Every other core module builds its artifacts
# with relabel.stamped (lock, identity stamp, the one stale policy, atomic write) and never imports the runner; the
# sections and results/ register and run experiments, so they may import it, but not for artifact use.
RUNNER_SIDE = {"relabel.launch"}
# STYLE.md: modules of a few hundred lines. The files still over MAX_LINES, each with the cap it may not grow past
# and why it is still long; a file trimmed under MAX_LINES leaves this list.
MAX_LINES = 500
OVER_MAX_LINES = {
    "tests/test_faults_files.py": (503, "one fault test per user-visible file failure (disk full, torn, unsafe)"),
    "pretrain/artifacts.py": (502, "every pretraining artifact's identity and build (annotator, stores, lists)"),
}


def modules(root: Path, packages) -> dict[str, Path]:
    """Dotted module name → file, for every .py file of `packages` under `root`."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph(root: Path, packages) -> dict[str, dict[str, list[str]]]:
    """module → {imported repo module → ['path:line (top|function)', ...]}, module-level and function-level imports
    alike. `from a import b` is an edge to a.b when that is a module, else to a; a dotted name is cut back to the
    longest prefix that is a repo module; third-party and standard-library imports are not edges."""
    mods = modules(root, packages)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, list[str]]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: `from . import x`, `from ..data import y`
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else resolve(base) for a in node.names]
            else:
                continue
            where = f"{path.relative_to(root)}:{node.lineno} ({'function' if id(node) in in_function else 'top'})"
            for target in targets:
                if target and target != mod and where not in graph.setdefault(mod, {}).setdefault(target, []):
                    graph[mod][target].append(where)
    return graph


def cycles(graph: dict[str, dict]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(graph, component) -> str:
    return "\n".join(f"  {a} -> {b}: {', '.join(graph[a][b])}" for a in component for b in sorted(graph.get(a, {}))
                     if b in component)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_graph_sees_a_cycle_closed_inside_a_function(tmp_path):
    """The checker itself: a cycle through an import inside a function, a relative import and `from pkg import
    module` are all edges; a third-party import is not."""
    _write(tmp_path, {
        "core/__init__.py": "",
        "core/a.py": "import numpy\nfrom core.b import helper\n",
        "core/b.py": "def helper():\n    from . import c\n    return c\n",
        "core/c.py": "from . import d\nfrom core import a\n",
        "core/d.py": "import core.a\n",
        "core/sub/__init__.py": "",
        "core/sub/e.py": "from ..d import x\nimport core.sub.nothing\n",
    })
    graph = import_graph(tmp_path, ["core"])
    assert graph["core.b"] == {"core.c": ["core/b.py:2 (function)"]}
    assert set(graph["core.c"]) == {"core.d", "core.a"} and set(graph["core.a"]) == {"core.b"}
    assert set(graph["core.sub.e"]) == {"core.d", "core.sub"}
    assert cycles(graph) == [["core.a", "core.b", "core.c", "core.d"]]  # c → d → a closes it too
    _write(tmp_path, {"core/b.py": "def helper():\n    return 1\n"})
    assert cycles(import_graph(tmp_path, ["core"])) == []


def test_every_package_of_the_repo_is_core_section_or_results():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == {CORE, *SECTIONS, RESULTS}, "a new top-level package: say here whether it is a section"


def test_no_import_cycle_among_the_repos_modules():
    graph = import_graph(ROOT, (CORE, *SECTIONS, RESULTS))
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(graph, c) for c in found)


def _imports_outside(graph, package: str, allowed) -> list[str]:
    return [f"{a} -> {b}: {', '.join(graph[a][b])}" for a in sorted(graph) if a.split(".")[0] == package
            for b in sorted(graph[a]) if not allowed(b)]


@pytest.mark.parametrize("section", SECTIONS)
def test_a_section_imports_only_the_core_and_itself(section):
    graph = import_graph(ROOT, (CORE, *SECTIONS, RESULTS))
    bad = _imports_outside(graph, section, lambda m: m.split(".")[0] in (CORE, section))
    assert not bad, f"{section}/ imports another section or results/:\n" + "\n".join(bad)


def test_the_core_imports_no_section_and_results_only_what_it_aggregates():
    graph = import_graph(ROOT, (CORE, *SECTIONS, RESULTS))
    bad = _imports_outside(graph, CORE, lambda m: m.split(".")[0] == CORE)
    assert not bad, "relabel/ imports a section or results/:\n" + "\n".join(bad)
    bad = _imports_outside(graph, RESULTS, lambda m: m.split(".")[0] in (CORE, RESULTS) or m in RESULTS_MAY_IMPORT)
    assert not bad, "results/ imports section code beyond RESULTS_MAY_IMPORT:\n" + "\n".join(bad)


def test_the_launcher_names_exactly_the_section_modules_that_exist():
    on_disk = {f"{p.parent.name}.experiments" for p in ROOT.glob("*/experiments.py")}
    assert set(launch.SECTION_MODULES) == on_disk
    assert len(launch.SECTION_MODULES) == len(on_disk)


@pytest.mark.parametrize("name", ["pretrain.experimnts", "eval_real.experiments", "pretrian.experiments"])
def test_a_misspelt_or_missing_section_module_fails_loudly(monkeypatch, name):
    """A typo in SECTION_MODULES (or a section that registers nothing) must not be skipped silently: its
    experiments would vanish from every table without a word."""
    monkeypatch.setattr(launch, "SECTION_MODULES", (name,))
    monkeypatch.setattr(launch, "_DISCOVERED", False)
    with pytest.raises(ModuleNotFoundError) as err:
        launch.discover()
    assert err.value.name in (name, name.split(".")[0])  # the module named, not something inside it


def test_no_core_module_imports_the_job_runner():
    """relabel.launch is the registry and job runner; the artifact primitive lives in relabel.stamped. A core module
    that needs a lock, a stamp or the stale policy imports that, so the core never depends on the runner."""
    graph = import_graph(ROOT, (CORE, *SECTIONS, RESULTS))
    bad = [f"{a}: {', '.join(graph[a][b])}" for a in sorted(graph) if a.split(".")[0] == CORE
           and a not in RUNNER_SIDE for b in graph[a] if b in RUNNER_SIDE]
    assert not bad, "core modules import the job runner (use relabel.stamped for artifacts):\n" + "\n".join(bad)


def test_no_one_reaches_the_artifact_primitive_through_the_runner():
    """The sections and results/ may import relabel.launch to register and run experiments, but a lock, a stamp, an
    artifact or the stale policy comes from relabel.stamped by its own name, never as `launch.<name>`."""
    from relabel import stamped
    primitive = {n for n in vars(stamped) if not n.startswith("_") and getattr(vars(stamped)[n], "__module__", "")
                 == stamped.__name__} | {"STAMP_SUFFIX", "UNSTAMPED", "ON_STALE"}
    bad = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "launch"
                    and node.attr in primitive):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} launch.{node.attr}")
            elif (isinstance(node, ast.ImportFrom) and node.module == "relabel.launch"
                  and any(a.name in primitive for a in node.names)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} from relabel.launch import ...")
    assert primitive >= {"artifact", "artifact_lock", "set_aside_stale", "write_stamp", "StaleWorkError"}
    assert not bad, "artifact primitives reached through relabel.launch:\n" + "\n".join(bad)


def _python_files() -> list[Path]:
    """Every .py file of the repository: its folders, not hidden ones (.venv, .git) nor run outputs (runs/)."""
    return sorted(p for p in ROOT.rglob("*.py") if not any(part.startswith(".") or part in ("runs", "__pycache__")
                                                          for part in p.relative_to(ROOT).parts[:-1]))


def test_no_python_file_is_over_max_lines():
    lines = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in _python_files()}
    assert "relabel/train.py" in lines and "tests/test_house.py" in lines  # the walk sees the repository
    over = {f: n for f, n in lines.items() if n > OVER_MAX_LINES.get(f, (MAX_LINES,))[0]}
    assert not over, (f"over {MAX_LINES} lines (or past the cap in OVER_MAX_LINES): {over}; split the module by "
                      "its jobs (STYLE.md: modules of a few hundred lines)")
    trimmed = sorted(f for f in OVER_MAX_LINES if lines.get(f, 0) <= MAX_LINES)
    assert not trimmed, f"{trimmed} are no longer over {MAX_LINES} lines (or gone): take them out of OVER_MAX_LINES"

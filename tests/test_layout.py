"""The package's layers import one way: model and data at the bottom, scripts on top, no cycles.

Every `import` statement in minigpt/ is read with `ast`, including those inside functions and
`if TYPE_CHECKING:` blocks, since a hidden import is still a dependency.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minigpt"
SCRIPTS = {"train", "finetune", "sample", "eval", "bench"}  # the top-level programs
MAX_LINES = 400

# What each layer may import from minigpt (besides itself). `None`: any third-party package.
ALLOWED = {
    "minigpt.model": {"minigpt.model"},
    "minigpt.data": {"minigpt.data"},
    "minigpt.checkpoint": {"minigpt.checkpoint", "minigpt.model", "minigpt.data"},
    "minigpt.settings": {"minigpt.model.errors"},
    "minigpt.paths": set(),
    "minigpt.threads": set(),  # stdlib only: it runs before torch loads
    "minigpt.device": {"minigpt.settings"},
    "minigpt.train": {"minigpt.train", "minigpt.model", "minigpt.data", "minigpt.checkpoint",
                      "minigpt.settings", "minigpt.device", "minigpt.paths"},
    "minigpt.finetune": {"minigpt.finetune", "minigpt.model", "minigpt.data", "minigpt.checkpoint",
                         "minigpt.settings", "minigpt.device", "minigpt.paths", "minigpt.train"},
    # evaluation trains nothing: it reads checkpoints and runs them where minigpt.device says
    "minigpt.eval": {"minigpt.eval", "minigpt.model", "minigpt.data", "minigpt.checkpoint",
                     "minigpt.settings", "minigpt.device", "minigpt.paths"},
}  # fmt: skip
# the model math needs torch and nothing else; the wait policy is chosen before torch loads
THIRD_PARTY = {"minigpt.model": {"torch"}, "minigpt.threads": set()}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, resolved to a module of ours
    where `from pkg import name` names a submodule."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.append((node.lineno, child if child in MODULES else node.module))
    return found


def _layer(module: str) -> str:
    return next(layer for layer in sorted(ALLOWED, key=len, reverse=True)
                if module == layer or module.startswith(layer + "."))  # fmt: skip


def _within(module: str, prefixes: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", [m for m in MODULES if m != "minigpt"])
def test_each_layer_imports_only_the_layers_below_it(module):
    layer = _layer(module)
    for line, imported in _imports(MODULES[module]):
        where = f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"
        top = imported.split(".")[0]
        assert top not in SCRIPTS, f"{where} imports the script {imported}"
        if top == "minigpt":
            assert _within(imported, ALLOWED[layer]), f"{where}: {layer} may not import {imported}"
        elif top not in sys.stdlib_module_names and top != "__future__" and layer in THIRD_PARTY:
            assert top in THIRD_PARTY[layer], f"{where}: {layer} may not depend on {top}"


def test_no_import_cycles():
    graph = {m: {i for _, i in _imports(p) if i in MODULES} for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_no_module_is_longer_than_one_sitting():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checker_sees_a_forbidden_import_inside_a_function(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("def save():\n    from minigpt.checkpoint import save_pretrained\n")
    assert (2, "minigpt.checkpoint") in _imports(source)
    assert not _within("minigpt.checkpoint", ALLOWED["minigpt.model"])


ROOT = PACKAGE.parent
SCRIPT_FILES = {name: ROOT / f"{name}.py" for name in ("train", "finetune", "sample", "eval")}
MAX_SCRIPT_LINES = 150


@pytest.mark.parametrize("name", sorted(SCRIPT_FILES))
def test_each_script_is_thin(name):
    lines = len(SCRIPT_FILES[name].read_text().splitlines())
    assert lines <= MAX_SCRIPT_LINES, f"{name}.py has {lines} lines: move the work into minigpt/"


@pytest.mark.parametrize("name", ["sample", "eval"])
def test_scripts_that_train_nothing_import_nothing_from_train(name):
    for line, imported in _imports(SCRIPT_FILES[name]):
        assert not _within(imported, {"minigpt.train"}), f"{name}.py:{line} imports {imported}"


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.name)
def test_benches_are_users_of_the_package(path):
    """A bench imports minigpt as installed (`pip install -e .`) and its sibling helpers, never a
    script, and never edits sys.path to find them."""
    benches = {p.stem for p in (ROOT / "bench").glob("*.py")}
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path":
            assert not (isinstance(node.value, ast.Name) and node.value.id == "sys"), (
                f"{path.name}:{node.lineno} touches sys.path"
            )
    for line, imported in _imports(path):
        top = imported.split(".")[0]
        if top in SCRIPT_FILES:
            assert top in benches, f"{path.name}:{line} imports the script {top}.py"

"""The library's layering: every import between keras_apml modules points down, and none forms a circle."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "keras_apml"

# Bottom first, as keras_apml/__init__.py describes them; a module may import its own layer's and those below.
LAYERS = [
    ("errors", "backend", "atomic", "progress", "machine", "cache", "safe_pickle", "image_files", "npz"),
    ("recipe", "imbalance", "noise"),
    ("stratified", "label_files", "dataset", "cifar10", "benchmark", "folders", "augmentation", "pipeline"),
    ("custom_objects", "keras_internals", "models", "backbones", "evaluation", "optimization", "checkpoints", "devices",
     "plots"),
    ("trainer",),
    ("cluster", "features", "label_noise", "adversarial", "report", "review", "review_server"),
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def imports(path):
    """The keras_apml modules one file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "keras_apml":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_apml."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("keras_apml.")}
    return found - {path.stem}


GRAPH = {p.stem: imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_every_module_has_a_layer():
    assert set(GRAPH) == set(RANK)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    upward = sorted(m for m in GRAPH[module] if RANK[m] > RANK[module])
    assert upward == [], f"{module} (layer {RANK[module]}) imports {upward} from above"


def test_no_import_circle():
    """Depth-first search for a back edge: a circle within a layer is caught too."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            assert state.get(target) != "open", " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])


def test_the_checks_catch_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The same checks, on a made graph that breaks both rules, fail."""
    bad = {"errors": {"recipe"}, "recipe": {"errors"}}
    monkeypatch.setattr(__import__(__name__), "GRAPH", {**GRAPH, **bad})
    with pytest.raises(AssertionError, match="errors -> recipe -> errors|recipe -> errors -> recipe"):
        test_no_import_circle()
    with pytest.raises(AssertionError, match=r"errors \(layer 0\) imports \['recipe'\] from above"):
        test_imports_point_down("errors")

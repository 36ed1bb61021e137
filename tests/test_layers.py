"""The import rule of STYLE.md: each module imports only from lower layers."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "recsys_dist"
LAYERS = {  # module prefix -> layer; the longest matching prefix wins
    "recsys_dist.errors": 0, "recsys_dist.config": 0, "recsys_dist.config_fields": 0, "recsys_dist.config_serving": 0, "recsys_dist.executors.base": 0,
    "recsys_dist.kernels": 1, "recsys_dist.blocking": 1,
    "recsys_dist.als": 2, "recsys_dist.model": 2, "recsys_dist.recommend": 2, "recsys_dist.evaluate": 2,
    "recsys_dist.explain": 2, "recsys_dist.models": 2, "recsys_dist.hashing": 0, "recsys_dist.progress": 0,
    "recsys_dist.data": 3, "recsys_dist.checkpoint": 3,
    "recsys_dist.data.ids": 0,  # pure id arithmetic (numpy, pandas): the one id lookup models use too
    "recsys_dist.executors": 4,
    "recsys_dist.train": 5, "recsys_dist.train_blocks": 5, "recsys_dist.train_metrics": 5, "recsys_dist.eval_ratings": 5, "recsys_dist.pipeline": 5, "recsys_dist.bench": 5, "recsys_dist.batch": 5,
    "recsys_dist.user_jobs": 5, "recsys_dist.estimators": 5, "recsys_dist.similar_job": 5,
    "recsys_dist.scoring": 5, "recsys_dist.model_blocks": 4,  # model_blocks: tasks reading a saved model where they run
    "recsys_dist.tuning": 5,  # the search drives train, batch and pipeline
    "recsys_dist.report": 6, "recsys_dist.explore": 6,  # views over every job's outputs; only cli imports them
    "recsys_dist.cli": 6, "recsys_dist.cli_flags": 6, "recsys_dist.cli_jobs": 6, "recsys_dist.__main__": 7, "recsys_dist": 0,
}
ONLY_IN = {"numba": ("recsys_dist.kernels",), "distributed": ("recsys_dist.executors.dask", "recsys_dist.executors.dask_cluster", "recsys_dist.executors.dask_tasks"),
           "dask": ("recsys_dist.executors.dask", "recsys_dist.executors.dask_cluster"), "fsspec": ("recsys_dist.data", "recsys_dist.checkpoint"),
           "pyarrow": ("recsys_dist.data", "recsys_dist.checkpoint"),
           # the optional extras: the main job and training never import them
           "matplotlib": ("recsys_dist.report", "recsys_dist.explore"), "streamlit": ("recsys_dist.explore",),
           "optuna": ("recsys_dist.tuning",), "optuna_integration": ("recsys_dist.tuning",)}


def _layer(module: str) -> int:
    return LAYERS[max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)]


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_layers_imports_go_downward_only(module, path):
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "recsys_dist":
            if module.startswith("recsys_dist.kernels") and not name.startswith("recsys_dist.kernels"):
                raise AssertionError(f"{module} imports {name}: kernels import nothing from recsys_dist")
            if name != "recsys_dist" and module != "recsys_dist":
                assert _layer(name) <= _layer(module) or name == module, f"{module} (layer {_layer(module)}) imports {name} (layer {_layer(name)})"
        elif top in ONLY_IN:
            assert module.startswith(ONLY_IN[top]), f"{module} imports {top}, allowed only in {ONLY_IN[top]}"


def test_layers_environment_and_argv_are_read_only_in_cli():
    for module, path in _modules():
        text = path.read_text()
        if module != "recsys_dist.cli":
            assert "os.environ" not in text and "sys.argv" not in text, module

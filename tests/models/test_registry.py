"""Finding adapters: built-ins, typos, module paths, file paths, installed entry points, --model-args."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from mme3dr.models import registry
from mme3dr.models.protocol import TextTo3DModel

PLUGIN_SOURCE = textwrap.dedent(
    """
    from mme3dr.models.protocol import Asset, ModelInfo

    class ThirdParty:
        def __init__(self, scale="1"):
            self.scale = float(scale)
            self.info = ModelInfo(name="third-party", revision=f"scale={self.scale}")

        def generate(self, requests):
            return [Asset(path=r.output_path("obj")) for r in requests]

    class NotAnAdapter:
        pass
    """
)


def test_builtin_names_resolve_and_record_their_source():
    loaded = registry.load_model("primitives")
    assert isinstance(loaded.model, TextTo3DModel)
    assert loaded.kind == "builtin" and loaded.target == "mme3dr.models.primitives:PrimitivesModel"
    assert loaded.file_sha256 and len(loaded.file_sha256) == 64


def test_typo_suggests_the_closest_name():
    with pytest.raises(registry.ModelSpecError, match="did you mean 'primitives'"):
        registry.load_model("primitive")


def test_folder_needs_a_directory(tmp_path: Path):
    with pytest.raises(registry.ModelSpecError, match="folder:path"):
        registry.load_model("folder")
    loaded = registry.load_model(f"folder:{tmp_path}", "name=closed-model,revision=2025-01")
    assert loaded.kind == "folder" and loaded.model.info.name == "closed-model"


@pytest.mark.parametrize(
    "text, expected",
    [("", {}), ("a=1", {"a": "1"}), ("a=1, b=x=y", {"a": "1", "b": "x=y"})],
)
def test_parse_model_args(text, expected):
    assert registry.parse_model_args(text) == expected


@pytest.mark.parametrize("bad", ["novalue", "1a=2", "a=1,a=2"])
def test_parse_model_args_rejects_malformed_items(bad):
    with pytest.raises(registry.ModelSpecError):
        registry.parse_model_args(bad)


def test_file_path_plugin_with_model_args(tmp_path: Path):
    path = tmp_path / "my_adapter.py"
    path.write_text(PLUGIN_SOURCE)
    loaded = registry.load_model(f"{path}:ThirdParty", "scale=2.5")
    assert loaded.kind == "file" and loaded.model.scale == 2.5
    assert loaded.model_args == {"scale": "2.5"}
    with pytest.raises(registry.ModelSpecError, match="not a TextTo3DModel"):
        registry.load_model(f"{path}:NotAnAdapter")
    with pytest.raises(registry.ModelSpecError, match="did you mean 'ThirdParty'"):
        registry.load_model(f"{path}:ThirdPary")
    with pytest.raises(registry.ModelSpecError, match="did not accept"):
        registry.load_model(f"{path}:ThirdParty", "steps=3")


def test_module_path_and_missing_module(tmp_path: Path, monkeypatch):
    (tmp_path / "mod_plugin_x.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = registry.load_model("mod_plugin_x:ThirdParty")
    assert loaded.kind == "module"
    with pytest.raises(registry.ModelSpecError, match="not importable"):
        registry.load_model("no_such_pkg_abc.mod:Model")


def install_entry_point_plugin(root: Path, dist: str = "mme3dr_tiny_plugin") -> Path:
    """A minimal installed distribution: a package plus a dist-info with an mme3dr.models entry point."""
    pkg = root / dist
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(PLUGIN_SOURCE)
    info = root / f"{dist}-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[mme3dr.models]\ntiny-plugin = {dist}:ThirdParty\n")
    (info / "top_level.txt").write_text(f"{dist}\n")
    (info / "RECORD").write_text("")
    return root


def test_installed_entry_point_plugin(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(install_entry_point_plugin(tmp_path / "site")))
    assert "tiny-plugin" in registry.available_models()
    loaded = registry.load_model("tiny-plugin", "scale=3")
    assert loaded.kind == "entry_point" and loaded.model.scale == 3.0
    assert loaded.distribution == "mme3dr_tiny_plugin" and loaded.distribution_version == "0.3.1"
    sys.modules.pop("mme3dr_tiny_plugin", None)

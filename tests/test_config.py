from __future__ import annotations

import pytest
import yaml

from finch.config import Config, init_workspace, load_settings
from finch.errors import UsageError
from finch.paths import WORKSPACE_FOLDERS, locations


def test_finch_home_puts_everything_in_one_folder(finch_home):
    settings = load_settings()
    assert settings.locations.config_file == finch_home.resolve() / "config.yaml"
    for name in WORKSPACE_FOLDERS:
        assert settings.path(f"{name}_dir") == finch_home.resolve() / name
        assert settings.sources[f"{name}_dir"] == "env (FINCH_HOME)"
    assert settings.path("models_dir") == finch_home.resolve() / "cache" / "models"
    assert settings.config.model == "gemma-3-270m"
    assert settings.sources["model"] == "default"


def test_xdg_layout_without_finch_home(tmp_path, monkeypatch):
    monkeypatch.delenv("FINCH_HOME", raising=False)
    monkeypatch.delenv("FINCH_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    locs = locations()
    assert locs.config_file == tmp_path / ".config/finch/config.yaml"
    assert locs.workspace_dir("runs") == tmp_path / ".local/share/finch/runs"
    assert locs.models_dir == tmp_path / ".cache/finch/models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    assert locations().models_dir == tmp_path / "xc/finch/models"


def test_sources_file_then_env(finch_home, monkeypatch):
    finch_home.mkdir()
    (finch_home / "config.yaml").write_text("model: ./my-model\nteacher: http://127.0.0.1:9/v1\n")
    monkeypatch.setenv("FINCH_TEACHER", "other-teacher/x")
    settings = load_settings()
    assert (settings.config.model, settings.sources["model"]) == ("./my-model", "file")
    assert (settings.config.teacher, settings.sources["teacher"]) == ("other-teacher/x", "env (FINCH_TEACHER)")


def test_configured_path_overrides_workspace_default(finch_home, tmp_path):
    finch_home.mkdir()
    (finch_home / "config.yaml").write_text(f"runs_dir: {tmp_path / 'elsewhere'}\n")
    settings = load_settings()
    assert settings.path("runs_dir") == tmp_path / "elsewhere"
    assert settings.sources["runs_dir"] == "file"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("model: a\nmodle: b\n", ["config.yaml:2", "unknown key 'modle'", "known keys: model"]),
        ("model: [1, 2]\n", ["config.yaml:1", "key 'model'", "valid string"]),
        ("model: a\n  bad: : indent\n", ["config.yaml:2", "invalid YAML"]),
        ("- just\n- a list\n", ["expected a mapping"]),
    ],
)
def test_bad_config_is_one_clear_usage_error(finch_home, text, fragments):
    finch_home.mkdir()
    (finch_home / "config.yaml").write_text(text)
    with pytest.raises(UsageError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_init_creates_workspace_and_keeps_existing_config(finch_home):
    settings = load_settings()
    created = init_workspace(settings, Config(model="./mine"))
    assert settings.locations.config_file in created
    for name in WORKSPACE_FOLDERS:
        assert (finch_home / name).is_dir()
    assert yaml.safe_load(settings.locations.config_file.read_text())["model"] == "./mine"
    assert init_workspace(settings, Config(model="./other")) == []
    assert load_settings().config.model == "./mine"
    init_workspace(settings, Config(model="./other"), force=True)
    assert load_settings().config.model == "./other"

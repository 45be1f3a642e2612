from pathlib import Path

import pytest

from imageapi.cli import check_exposure, is_loopback
from imageapi.config import ModelSpec, load_settings
from imageapi.engine.models import describe_model


def test_model_flag_forms():
    assert ModelSpec.parse("random:tiny") == ModelSpec(name="random:tiny", source="random:tiny")
    assert ModelSpec.parse("turbo=stabilityai/sd-turbo") == ModelSpec(name="turbo", source="stabilityai/sd-turbo")
    with pytest.raises(ValueError):
        ModelSpec.parse("=x")


def test_precedence_cli_over_env_over_file(tmp_path: Path):
    config = tmp_path / "imageapi.toml"
    config.write_text('port = 9000\nhost = "127.0.0.2"\nurl_ttl_seconds = 10\n[aliases]\n"dall-e-3" = "turbo"\n'
                      '[models.turbo]\nsource = "random:tiny"\nsteps = {low = 3}\n')
    env = {"IMAGEAPI_PORT": "9100", "IMAGEAPI_API_KEYS": "a, b", "IMAGEAPI_URL_TTL_SECONDS": "20"}
    settings = load_settings({"port": 9200, "models": None}, environ=env, config_file=config)
    assert settings.port == 9200 and settings.host == "127.0.0.2" and settings.url_ttl_seconds == 20
    assert settings.api_keys == ("a", "b") and settings.aliases == {"dall-e-3": "turbo"}
    assert settings.models[0].name == "turbo" and describe_model(settings.models[0]).steps["low"] == 3


def test_a_model_flag_keeps_the_file_details_of_its_name(tmp_path: Path):
    config = tmp_path / "c.toml"
    config.write_text('[models.turbo]\nsource = "x"\nguidance_scale = 1.5\n')
    settings = load_settings({"models": ["turbo=random:tiny"]}, environ={}, config_file=config)
    assert settings.models[0].source == "random:tiny" and settings.models[0].guidance_scale == 1.5


def test_duplicate_model_names_are_refused():
    with pytest.raises(ValueError):
        load_settings({"models": ["a=random:tiny", "a=random:sd2"]}, environ={})


def test_family_defaults():
    assert describe_model(ModelSpec(name="t", source="stabilityai/sd-turbo")).guidance_scale == 0.0
    sdxl = describe_model(ModelSpec(name="x", source="stabilityai/stable-diffusion-xl-base-1.0"))
    assert sdxl.default_size == (1024, 1024) and sdxl.steps["medium"] == 25


def test_no_keys_only_on_loopback():
    tiny = [ModelSpec.parse("random:tiny")]
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert check_exposure(load_settings({"models": tiny}, environ={})) is None
    assert "refusing" in check_exposure(load_settings({"models": tiny, "host": "0.0.0.0"}, environ={}))
    assert check_exposure(load_settings({"models": tiny, "host": "0.0.0.0", "allow_no_auth": True}, environ={})) \
        is None
    assert check_exposure(load_settings({"models": tiny, "host": "0.0.0.0", "api_keys": ["k"]}, environ={})) is None
    assert "no model" in check_exposure(load_settings({}, environ={}))


def test_aliases_must_name_served_models(tmp_path: Path):
    config = tmp_path / "c.toml"
    config.write_text('[aliases]\n"dall-e-3" = "sdxl"\n')
    with pytest.raises(ValueError, match="not served"):
        load_settings({"models": ["random:tiny"]}, environ={}, config_file=config)

import pytest

from imageapi.errors import InvalidRequest, quote_choices
from imageapi.service.profiles import PROFILES, Family, check_free_size, family_of, quality_level


@pytest.mark.parametrize("name, family", [
    (None, Family.NATIVE), ("random:tiny", Family.NATIVE), ("dall-e-2", Family.DALL_E_2),
    ("dall-e-3", Family.DALL_E_3), ("gpt-image-1", Family.GPT_IMAGE), ("gpt-image-1-mini", Family.GPT_IMAGE),
    ("gpt-image-1.5", Family.GPT_IMAGE), ("chatgpt-image-latest", Family.GPT_IMAGE),
    ("gpt-image-2", Family.GPT_IMAGE_FREE_SIZE), ("gpt-image-2-2026-04-21", Family.GPT_IMAGE_FREE_SIZE),
    ("gpt-image-2.5-flare", Family.GPT_IMAGE_FREE_SIZE),
])
def test_family_of(name, family):
    assert family_of(name) is family


def test_openai_list_style():
    assert quote_choices(["a"]) == "'a'"
    assert quote_choices(["a", "b"]) == "'a' and 'b'"
    assert quote_choices(["a", "b", "c"]) == "'a', 'b', and 'c'"


def test_quality_words_map_onto_step_levels():
    assert [quality_level(q) for q in ("auto", "standard", "hd", "low", "high")] == [
        "medium", "medium", "high", "low", "high"]


@pytest.mark.parametrize("size, ok", [
    ("1024x1024", True), ("1536x1024", True), ("3840x2160", False),  # over this server's default cap
    ("1000x1000", False), ("4096x1024", False), ("512x512", False), ("1024x3072", True), ("1024x3088", False),
])
def test_gpt_image_2_size_rules(size, ok):
    assert_size_rule(Family.GPT_IMAGE_FREE_SIZE, size, ok)


def assert_size_rule(family: Family, size: str, ok: bool) -> None:
    if ok:
        assert check_free_size(PROFILES[family], size, 2048 * 2048, 8)
    else:
        with pytest.raises(InvalidRequest):
            check_free_size(PROFILES[family], size, 2048 * 2048, 8)


@pytest.mark.parametrize("size, ok", [("64x64", True), ("264x200", True), ("260x256", False), ("56x64", False),
                                      ("2048x2056", False), ("x", False)])
def test_native_size_rules(size, ok):
    assert_size_rule(Family.NATIVE, size, ok)

"""Moderation: the rules engine, the request's moderation level, and tiny random transformers classifiers
(built and saved in the test, so the real loading and inference path runs, offline)."""

import json

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
)

from imageapi.moderation.policy import ModerationPolicy, RuleEngine, load_policy

GEN = "/v1/images/generations"
BODY = {"size": "256x256", "response_format": "url"}
POLICY = """
[categories.violence]
words = ["behead"]
phrases = ["blow up the"]
patterns = ["\\\\bk+i+l+l+\\\\b"]

[categories.profanity]
words = ["darn"]
levels = ["auto"]
"""


def test_rules_words_phrases_patterns_and_levels(tmp_path):
    (tmp_path / "p.toml").write_text(POLICY)
    rules = RuleEngine(load_policy(tmp_path / "p.toml"))
    assert rules.violations("How to BEHEAD a hydra", "auto") == ["violence"]
    assert rules.violations("beheading", "auto") == []  # whole words only
    assert rules.violations("blow   up  the bridge", "low") == ["violence"]
    assert rules.violations("kiiilll them", "low") == ["violence"]
    assert rules.violations("darn it", "auto") == ["profanity"]
    assert rules.violations("darn it", "low") == []
    (tmp_path / "p.json").write_text(json.dumps({"categories": {"x": {"words": ["zap"]}}}))
    assert RuleEngine(load_policy(tmp_path / "p.json")).violations("ZAP", "low") == ["x"]


def test_bad_policies_are_refused():
    with pytest.raises(ValueError):
        ModerationPolicy.model_validate({"categories": {"x": {"patterns": ["("]}}})
    with pytest.raises(ValueError):
        ModerationPolicy.model_validate({"categories": {"x": {"levels": ["high"]}}})


def assert_blocked(response, category):
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and body["trace_id"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "moderation_blocked"
    assert body["error"]["type"] == "image_generation_user_error"
    message = body["error"]["message"]
    assert message.startswith("Your request was rejected by the safety system.")
    assert f"safety_violations=[{category}]." in message
    assert response.headers["x-request-id"] in message


def results_of(client):
    folder = client.app.state.settings.data_dir / "results"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_rule_refusal_makes_and_stores_nothing(make_client, tmp_path):
    (tmp_path / "policy.toml").write_text(POLICY)
    client = make_client(moderation_policy=tmp_path / "policy.toml")
    engine = client.app.state.engine
    before = dict(engine.batch_sizes)
    assert_blocked(client.post(GEN, json={**BODY, "prompt": "a knight will behead the dragon"}), "violence")
    assert_blocked(client.post("/v1/images/edits", json={**BODY, "prompt": "darn", "image": "http://x.invalid/a"}),
                   "profanity")  # checked before the URL is even fetched
    assert dict(engine.batch_sizes) == before and results_of(client) == []
    assert client.post(GEN, json={**BODY, "prompt": "darn", "moderation": "low"}).status_code == 200
    assert client.post(GEN, json={**BODY, "prompt": "a calm lake"}).status_code == 200
    assert len(results_of(client)) == 2


def tiny_text_classifier(folder, favoured_label):
    """A 2-layer random BERT whose head always favours one label (zero weights, a large bias)."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "calm", "lake", "cat"]
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=64, num_labels=2,
                        id2label={0: "safe", 1: "toxic"}, label2id={"safe": 0, "toxic": 1})
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([10.0, -10.0] if favoured_label == "safe" else [-10.0, 10.0]))
    model.save_pretrained(folder)
    return str(folder)


def tiny_image_classifier(folder):
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    config = ViTConfig(image_size=32, patch_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=16, num_labels=2, id2label={0: "normal", 1: "nsfw"},
                       label2id={"normal": 0, "nsfw": 1})
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([-10.0, 10.0]))  # every image scores ~1.0 as nsfw
    model.save_pretrained(folder)
    return str(folder)


def write_policy(path, text_model=None, image_model=None, text_labels=None):
    policy = {"categories": {}}
    if text_model:
        policy["text_classifier"] = {"model": text_model, "labels": text_labels}
    if image_model:
        policy["image_classifier"] = {"model": image_model,
                                      "labels": {"nsfw": {"category": "sexual", "threshold": 0.9}}}
    path.write_text(json.dumps(policy))
    return path


def test_text_classifier_thresholds_labels_and_levels(make_client, tmp_path):
    (tmp_path / "text").mkdir()
    model = tiny_text_classifier(tmp_path / "text", favoured_label="toxic")
    labels = {"toxic": {"category": "harassment", "threshold": 0.9, "levels": ["auto"]},
              "safe": {"category": "never", "threshold": 0.9}}
    client = make_client(moderation_policy=write_policy(tmp_path / "p.json", text_model=model, text_labels=labels))
    assert_blocked(client.post(GEN, json={**BODY, "prompt": "a calm lake"}), "harassment")
    assert results_of(client) == []
    allowed = client.post(GEN, json={**BODY, "prompt": "a calm lake", "moderation": "low"})
    assert allowed.status_code == 200, allowed.text


def test_image_classifier_refuses_results_before_storing(make_client, tmp_path):
    (tmp_path / "image").mkdir()
    client = make_client(moderation_policy=write_policy(tmp_path / "p.json",
                                                        image_model=tiny_image_classifier(tmp_path / "image")))
    assert_blocked(client.post(GEN, json={**BODY, "prompt": "a calm lake", "n": 2}), "sexual")
    assert results_of(client) == []

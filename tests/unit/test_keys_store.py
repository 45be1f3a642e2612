import sqlite3

import pytest

from imageapi.cli import check_exposure, main
from imageapi.config import ModelSpec, Settings
from imageapi.keys.store import KEY_PREFIX, KeyNotFound, KeyStore, hash_key


def test_create_stores_only_a_hash(tmp_path):
    store = KeyStore.in_data_dir(tmp_path)
    record, secret = store.create("ci", images_per_minute=7)
    assert secret.startswith(KEY_PREFIX) and len(secret) > 40
    assert record.key_hash == hash_key(secret) and record.prefix == secret[: len(record.prefix)]
    raw = (tmp_path / "keys.sqlite3").read_bytes()
    assert secret.encode() not in raw
    rows = sqlite3.connect(tmp_path / "keys.sqlite3").execute("SELECT * FROM api_keys").fetchall()
    assert secret not in repr(rows)
    assert sqlite3.connect(tmp_path / "keys.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "keys.sqlite3").stat().st_mode & 0o077 == 0  # owner-only
    [listed] = store.list()
    assert listed.name == "ci" and listed.images_per_minute == 7 and listed.requests_per_minute is None


def test_revoke_by_id_or_prefix(tmp_path):
    store = KeyStore.in_data_dir(tmp_path)
    first, _ = store.create()
    second, _ = store.create()
    assert store.revoke(first.id).revoked_at is not None
    assert store.revoke(second.prefix).id == second.id
    active, used = store.snapshot()
    assert active == {} and used
    with pytest.raises(KeyNotFound):
        store.revoke("sk-imageapi-")  # matches both: ambiguous
    with pytest.raises(KeyNotFound):
        store.revoke("key_doesnotexist")


def test_limits_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        KeyStore.in_data_dir(tmp_path).create(images_per_minute=0)


def test_cli_create_list_revoke(tmp_path, capsys):
    assert main(["keys", "create", "--name", "bot", "--images-per-minute", "5", "--requests-per-minute", "9",
                 "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    secret = out[-1]
    assert secret.startswith(KEY_PREFIX) and " " not in secret
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "bot" in listing and "images/min=5" in listing and "requests/min=9" in listing and "active" in listing
    assert secret not in listing
    key_id = listing.split()[0]
    assert main(["keys", "revoke", key_id, "--data-dir", str(tmp_path)]) == 0
    assert "revoked" in capsys.readouterr().out
    main(["keys", "list", "--data-dir", str(tmp_path)])
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "revoke", "key_nope", "--data-dir", str(tmp_path)]) == 1
    assert main(["keys", "create", "--images-per-minute", "0", "--data-dir", str(tmp_path)]) == 2


def test_store_keys_count_as_keys_for_exposure(tmp_path):
    settings = Settings(models=(ModelSpec(name="m", source="random:tiny"),), host="0.0.0.0", data_dir=tmp_path)
    assert "refusing" in (check_exposure(settings) or "")
    KeyStore.in_data_dir(tmp_path).create()
    assert check_exposure(settings) is None


def test_invalid_moderation_policy_stops_the_start(tmp_path):
    (tmp_path / "bad.toml").write_text('[categories.x]\npatterns = ["("]\n')
    settings = Settings(models=(ModelSpec(name="m", source="random:tiny"),), data_dir=tmp_path,
                        moderation_policy=tmp_path / "bad.toml")
    assert "invalid moderation policy" in (check_exposure(settings) or "")

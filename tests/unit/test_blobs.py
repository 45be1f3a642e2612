import time

import pytest

from imageapi.storage.blobs import BlobRefused, LocalBlobStore, load_or_create_secret


def test_signed_urls(tmp_path):
    store = LocalBlobStore(tmp_path / "r", load_or_create_secret(tmp_path / "k"), ttl_seconds=60)
    blob = store.put(b"data", "png")
    assert store.open_path(blob.name, blob.signature).read_bytes() == b"data"
    with pytest.raises(BlobRefused):
        store.open_path(blob.name, "0" * 64)
    forged = f"{blob.expires_at + 999}-{blob.name.split('-', 1)[1]}"
    with pytest.raises(BlobRefused):
        store.open_path(forged, blob.signature)
    with pytest.raises(BlobRefused):
        store.open_path("../../etc/passwd", store.sign("../../etc/passwd"))


def test_expiry_and_sweep(tmp_path):
    store = LocalBlobStore(tmp_path / "r", b"k" * 32, ttl_seconds=60)
    blob = store.put(b"data", "png")
    later = time.time() + 61
    with pytest.raises(BlobRefused):
        store.open_path(blob.name, blob.signature, now=later)
    assert store.sweep(now=later) == 1
    assert not any((tmp_path / "r").iterdir())


def test_secret_survives_restarts(tmp_path):
    first = load_or_create_secret(tmp_path / "k")
    assert load_or_create_secret(tmp_path / "k") == first
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600

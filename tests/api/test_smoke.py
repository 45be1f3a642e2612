from support import mask_bytes, png_bytes


def test_generate_b64(client):
    r = client.post("/v1/images/generations", json={"prompt": "a cat", "size": "256x256", "response_format": "b64_json", "n": 2})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2


def test_edit_with_mask(client):
    r = client.post("/v1/images/edits", data={"prompt": "x", "response_format": "b64_json"},
                    files=[("image", ("a.png", png_bytes(), "image/png")), ("mask", ("m.png", mask_bytes((256, 256), (0, 0, 64, 64)), "image/png"))])
    assert r.status_code == 200, r.text

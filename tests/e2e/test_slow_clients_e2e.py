"""Slow clients (a body that trickles in, or never comes) must not hold up anyone else."""

import json
import socket
import time

import httpx

from support import API_KEY, ServerProcess


def test_stalled_uploads_do_not_block_other_clients(server):
    stalled = []
    for _ in range(20):
        connection = socket.create_connection(("127.0.0.1", server.port))
        connection.sendall(b"POST /v1/images/edits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY.encode()
                           + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"
                           + b"--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nx")
        stalled.append(connection)
    try:
        started = time.monotonic()
        response = httpx.post(server.base_url + "/v1/images/generations", timeout=30,
                              headers={"Authorization": f"Bearer {API_KEY}"},
                              json={"prompt": "not blocked", "size": "256x256", "response_format": "b64_json"})
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 20
    finally:
        for connection in stalled:
            connection.close()
    assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200


def test_a_stalled_body_gets_408(tmp_path):
    slow = ServerProcess(tmp_path, ["--model", "random:tiny", "--api-key", API_KEY,
                                    "--body-read-timeout-seconds", "1"]).start()
    try:
        with socket.create_connection(("127.0.0.1", slow.port), timeout=10) as connection:
            connection.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                               + API_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100\r\n\r\n{\"prompt\": ")
            answer = b""
            while b"}" not in answer.split(b"\r\n\r\n", 1)[-1]:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        error = json.loads(body)
        assert error["success"] is False and error["error"]["code"] == "request_timeout" and error["trace_id"]
        assert set(error["error"]) == {"message", "type", "param", "code"}
    finally:
        slow.stop()

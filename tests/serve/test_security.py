"""What a web page on another site can do to a local ``masklab serve``: nothing. A request whose ``Host`` does not
name the server (DNS rebinding) is refused with a JSON 400, a POST from another origin (a cross-site form, sent
without preflight) with a JSON 403; every answer says ``nosniff`` and carries a CSP the page lives within."""

import pytest

from tests.serve.conftest import make_client


@pytest.fixture(scope="module")
def bound(runs):
    """Clients of the app as ``masklab serve --host 127.0.0.1 --port 8765`` builds it."""
    from fastapi.testclient import TestClient

    from masklab.serve.app import create_app

    app = create_app(runs, host="127.0.0.1", port=8765)
    return lambda base="http://127.0.0.1:8765": TestClient(app, base_url=base, raise_server_exceptions=False)


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:8765", "127.0.0.1.evil.example.com",
                                  "127.0.0.1:9999", "", "localhost:8765@evil"])  # fmt: skip
def test_a_host_that_does_not_name_the_server_is_refused(bound, host):
    for path in ("/api/runs", "/api/runs/mae/examples/0", "/"):
        response = bound().get(path, headers={"Host": host})
        assert response.status_code == 400, (path, host)
        assert response.json()["field"] == "Host" and "Host" in response.json()["error"]
        assert "image/png" not in response.headers.get("content-type", "")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8765", "localhost", "LOCALHOST:8765", "[::1]:8765",
                                  "[::1]"])  # fmt: skip
def test_the_local_names_of_the_server_are_answered(bound, host):
    assert bound().get("/api/runs", headers={"Host": host}).status_code == 200


def test_a_server_bound_to_a_name_answers_that_name(runs):
    from fastapi.testclient import TestClient

    from masklab.serve.app import create_app

    client = TestClient(create_app(runs, host="box.lan", port=80), base_url="http://box.lan")
    assert client.get("/health").status_code == 200
    assert client.get("/health", headers={"Host": "evil.example.com"}).status_code == 400


@pytest.mark.parametrize("origin", ["https://evil.example.com", "null", "http://127.0.0.1:9999",
                                    "http://evil.example.com:8765"])  # fmt: skip
def test_a_post_from_another_origin_is_refused(bound, origin):
    client = bound()
    form = client.post("/api/runs/mae/reconstruct", data={"example": 0, "masking": "random"},
                       headers={"Origin": origin})  # fmt: skip
    assert form.status_code == 403 and form.json()["field"] == "Origin"
    upload = client.post("/api/runs/table/score", files={"file": ("t.csv", b"a,b\n1,2\n")}, headers={"Origin": origin})
    assert upload.status_code == 403


def test_a_post_from_the_page_itself_is_answered(bound):
    client = bound()
    for origin in ("http://127.0.0.1:8765", "http://localhost:8765", None):
        headers = {} if origin is None else {"Origin": origin}
        response = client.post("/api/runs/mae/reconstruct", data={"example": 0, "masking": "random"}, headers=headers)
        assert response.status_code == 200, (origin, response.text)


def test_every_answer_says_nosniff_and_carries_a_csp(client):
    for response in (client.get("/"), client.get("/api/runs"), client.get("/static/app.js"),
                     client.get("/api/runs/nope"), client.post("/api/runs/mlm/fill", json={})):  # fmt: skip
        assert response.headers["x-content-type-options"] == "nosniff"
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_head_of_the_page_answers_like_get_without_a_body(client):
    get, head = client.get("/"), client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) == len(get.content)


def test_the_default_test_client_reaches_the_app_by_its_local_name(runs):
    assert make_client(runs).get("/health").status_code == 200


def _status(host_bound: str, headers: dict[str, str], arrived: str, method: str = "GET") -> int:
    """The status LocalOnly gives a request with ``headers`` that came in on the address ``arrived``."""
    import asyncio

    from masklab.serve.security import LocalOnly

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/", "raw_path": b"/", "query_string": b"",
             "server": (arrived, 8765), "client": ("203.0.113.5", 50000), "scheme": "http", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}  # fmt: skip
    asyncio.run(LocalOnly(app, host_bound, 8765)(scope, receive, send))
    return sent[0]["status"]


@pytest.mark.parametrize("bound_to", ["0.0.0.0", "::"])
def test_a_server_bound_to_every_address_answers_the_address_a_request_came_in_on(bound_to):
    # Opened as http://192.168.7.9:8765 from another machine on the LAN: it answered 400 (only names were known).
    assert _status(bound_to, {"Host": "192.168.7.9:8765"}, "192.168.7.9") == 200
    assert _status(bound_to, {"Host": "[fd00::7]:8765"}, "fd00::7") == 200
    assert _status(bound_to, {"Host": "192.168.7.9:8765"}, "::ffff:192.168.7.9") == 200  # dual-stack socket
    page = {"Host": "192.168.7.9:8765", "Origin": "http://192.168.7.9:8765"}
    assert _status(bound_to, page, "192.168.7.9", "POST") == 200
    # Another address, another port, or a name that is not the server's stays refused.
    assert _status(bound_to, {"Host": "10.1.2.3:8765"}, "192.168.7.9") == 400
    assert _status(bound_to, {"Host": "192.168.7.9:9999"}, "192.168.7.9") == 400
    assert _status(bound_to, {"Host": "evil.example.com:8765"}, "192.168.7.9") == 400
    cross = {"Host": "192.168.7.9:8765", "Origin": "http://evil.example.com:8765"}
    assert _status(bound_to, cross, "192.168.7.9", "POST") == 403


def test_a_server_bound_locally_does_not_answer_other_addresses():
    assert _status("127.0.0.1", {"Host": "192.168.7.9:8765"}, "192.168.7.9") == 400
    assert _status("127.0.0.1", {"Host": "127.0.0.1:8765"}, "127.0.0.1") == 200

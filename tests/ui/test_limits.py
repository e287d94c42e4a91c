"""The request checks of limits.py on their own: addresses, sizes, multipart parts split anywhere."""

from __future__ import annotations

import asyncio

import pytest

from videollama_demo.ui.limits import _BodyCounter, client_address, parse_size, question_chars, text_refusal


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted() -> None:
    scope = {"client": ("10.0.0.9", 5000), "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")]}
    assert client_address(scope, trusted_proxy=False) == "10.0.0.9"
    assert client_address(scope, trusted_proxy=True) == "203.0.113.7"  # what the proxy appended, not the client's


@pytest.mark.parametrize(("text", "expected"), [("500mb", 500 * 2**20), ("2GB", 2 * 2**30), ("1024", 1024),
                                                ("1.5kb", 1536)])
def test_sizes_are_read_like_gradio_reads_them(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_a_question_is_refused_only_beyond_what_a_context_could_hold() -> None:
    limit = question_chars(2000)
    assert text_refusal("x" * limit, limit, "question") is None
    assert "32,001 characters" in text_refusal("x" * (limit + 1), limit, "question")


def _parts_seen(body: bytes, chunk: int) -> str | None:
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]

    async def receive():
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    counter = _BodyCounter(receive, 10**9, b"XyZ")

    async def drain():
        for _ in range(len(chunks)):
            if (await counter.receive())["type"] == "http.disconnect":
                return

    asyncio.run(drain())
    return counter.cut


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_a_second_file_in_one_upload_is_cut_wherever_the_chunks_split(chunk: int) -> None:
    part = b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\"\r\n\r\ndata\r\n"
    assert _parts_seen(part + b"--XyZ--\r\n", chunk) is None
    assert _parts_seen(part + part + b"--XyZ--\r\n", chunk) == "more than one file in one request"

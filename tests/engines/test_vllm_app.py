"""The whole product on the vllm engine: the preview pipeline answering through a real vLLM server.

The reference for every answer is the local engine (transformers in this process, kept KV cache)
on the same conversation, greedy: the two engines must give the same text. Through the real
Gradio server: eight tabs at once without cross-talk, Stop, and a server killed mid-answer.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import torch
from gradio_client import Client

from tests import media_factory
from tests.engines.conftest import start_server
from tests.robustness.test_sessions import serve, wait_until
from tests.ui.conftest import GREEDY, engine_answers, message_text, transcript
from tests.ui.test_api import ask, upload
from videollama_demo import EngineError, Pipeline, load_pipeline
from videollama_demo.engines.base import GenerationRequest
from videollama_demo.engines.vllm import VLLMEngine
from videollama_demo.engines.vllm_server import VLLMServer
from videollama_demo.pipeline.loading import VLLMOptions

pytestmark = pytest.mark.vllm

SHORT = GREEDY | {"max_new_tokens": 10}
LONG = GREEDY | {"max_new_tokens": 300}
QUESTIONS = ("What do you see?", "Which colours are there?", "Is anything moving?", "Describe the scene.",
             "What shapes are visible?", "Is it day or night?", "What is in the middle?", "How many things are there?")


class RecordingEngine(VLLMEngine):
    """The real engine, keeping a copy of every request body it sends."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[dict] = []

    def payload(self, request: GenerationRequest) -> dict:
        body = super().payload(request)
        self.sent.append(body)
        return body


def sent_embeddings(body: dict) -> torch.Tensor:
    return torch.load(io.BytesIO(base64.b64decode(body["prompt_embeds"])), weights_only=True)


def pipeline_on(base: Pipeline, engine: VLLMEngine) -> Pipeline:
    """The preview's encoders and tokenizer, answering through `engine`."""
    return Pipeline(base.config, base.encoder, base.llm, base.runtime, engine=engine,
                    preview_reason=base.preview_reason, encode_cache=base.encode_cache, decoder=base.decoder,
                    max_seconds=base.max_seconds)


@pytest.fixture(scope="module")
def vllm_pipeline(preview_pipeline: Pipeline, vllm_server: VLLMServer) -> Iterator[Pipeline]:
    engine = RecordingEngine(vllm_server.url, dtype=torch.float32, timeout=60.0)
    yield pipeline_on(preview_pipeline, engine)
    engine.close()


@pytest.fixture(scope="module")
def eight_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("eight_vllm")
    sources = ["testsrc=", "smptebars=", "rgbtestsrc=", "mandelbrot=", "color=c=orange:", "testsrc2=", "cellauto=",
               "color=c=navy:"]  # a source and the separator before its size
    files = []
    for number, source in enumerate(sources):
        path = directory / f"clip{number}.mp4"
        media_factory.run_ffmpeg("-f", "lavfi", "-i", f"{source}size=96x72:rate=8", "-t", "1.5", "-c:v", "libx264",
                                 "-pix_fmt", "yuv420p", str(path))
        files.append(path)
    return files


def test_loading_with_a_running_server_keeps_only_the_embeddings_here(vllm_server: VLLMServer,
                                                                     tmp_path: Path) -> None:
    pipeline = load_pipeline("auto", checkpoints=tmp_path, device="cpu", isolate_decoding=False,
                             engine="vllm", vllm=VLLMOptions(server=vllm_server.url))
    try:
        assert pipeline.is_preview and pipeline.engine.name == "vllm" and pipeline.llm.model is None
        assert pipeline.engine.parallel_requests > 1
    finally:
        pipeline.close()


def test_greedy_conversation_equals_the_local_engine(preview_pipeline: Pipeline, vllm_pipeline: Pipeline,
                                                     shared_media: dict[str, Path]) -> None:
    encoding = preview_pipeline.encode(shared_media["video"])
    local, remote = preview_pipeline.new_session(), vllm_pipeline.new_session()
    for session in (local, remote):
        session.add_media(encoding)
    engine: RecordingEngine = vllm_pipeline.engine
    for question in ("What happens in this video?", "And what about the sound?", "Anything else?"):
        expected_embeddings = remote.prompt_embeddings(question)
        wanted = "".join(local.ask(question, **SHORT))
        got = "".join(remote.ask(question, **SHORT))
        assert got == wanted and got.strip()
        # What went to the server is exactly the session's prompt embeddings, bit for bit.
        assert torch.equal(sent_embeddings(engine.sent[-1]), expected_embeddings)
    assert engine.sent[-1]["top_k"] == 50 and engine.sent[-1]["temperature"] == 0


def test_eight_tabs_at_once_through_the_app(preview_pipeline: Pipeline, vllm_pipeline: Pipeline,
                                            eight_files: list[Path], tmp_path: Path) -> None:
    references = [engine_answers(preview_pipeline, path, [QUESTIONS[n]], SHORT)[0] for n, path in
                  enumerate(eight_files)]
    assert len(set(references)) > 1  # different conversations: a swapped answer would show
    barrier = threading.Barrier(len(eight_files))
    with serve(vllm_pipeline, 16, tmp_path) as server:
        def converse(index: int) -> list[tuple[str, str]]:
            client = Client(server.url, verbose=False)
            try:
                upload(client, eight_files[index])
                barrier.wait(timeout=120)
                return transcript(ask(client, QUESTIONS[index], **SHORT)[-1])
            finally:
                client.close()

        results: dict[int, list[tuple[str, str]]] = {}
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, converse(i))) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    for index, reference in enumerate(references):
        assert results[index] == [("user", QUESTIONS[index]), ("assistant", reference)]


def test_stop_mid_answer_on_the_vllm_engine(vllm_pipeline: Pipeline, shared_media: dict[str, Path],
                                            tmp_path: Path) -> None:
    with serve(vllm_pipeline, 16, tmp_path) as server:
        client = Client(server.url, verbose=False)
        upload(client, shared_media["video"])
        job = client.submit("Describe every frame in detail.", **LONG, api_name="/ask")
        wait_until(lambda: len(job.outputs()) >= 3, 120, "the long answer streams")
        stopped = client.predict(api_name="/stop")
        assert message_text(stopped[-1]).endswith("*(stopped)*")
        assert len(message_text(stopped[-1]).split()) < 150
        after = transcript(ask(client, "Say it shorter.", **SHORT)[-1])
        assert [role for role, _ in after] == ["user", "assistant", "user", "assistant"] and after[3][1]
        client.close()


def _server_pid_tree(server: VLLMServer) -> list[psutil.Process]:
    root = psutil.Process(server._process.pid)
    return [root, *root.children(recursive=True)]


def test_a_server_killed_mid_answer_is_a_clear_message_and_the_chat_goes_on(
        preview_pipeline: Pipeline, served_dir: Path, shared_media: dict[str, Path], tmp_path: Path) -> None:
    own = start_server(served_dir, tmp_path)
    port = own.port
    engine = VLLMEngine(own.url, dtype=torch.float32, timeout=60.0)
    pipeline = pipeline_on(preview_pipeline, engine)
    restarted = None
    try:
        with serve(pipeline, 16, tmp_path) as server:
            client = Client(server.url, verbose=False)
            upload(client, shared_media["video"])
            first = transcript(ask(client, "What do you see?", **SHORT)[-1])
            job = client.submit("Describe every frame in detail.", **LONG, api_name="/ask")
            wait_until(lambda: len(job.outputs()) >= 3, 120, "the long answer streams")
            own.kill()
            with pytest.raises(Exception) as failure:
                job.result(timeout=120)
            assert "stopped in the middle of the answer" in str(failure.value)
            page = server.page(client)
            assert [t.question for t in page.chat.turns][0] == "What do you see?"  # the conversation is kept
            with pytest.raises(Exception, match="is not answering"):
                ask(client, "Are you there?", **SHORT)
            restarted = start_server(served_dir, tmp_path, port=port)
            after = transcript(ask(client, "And now?", **SHORT)[-1])
            assert after[:2] == first and after[-2][0] == "user" and after[-1][1]
            client.close()
    finally:
        engine.close()
        for server_process in (own, restarted):
            if server_process is not None:
                server_process.stop()


def test_the_app_starts_and_stops_its_own_vllm_server(served_dir: Path, tmp_path: Path) -> None:
    """`--engine vllm` without --llm-server: load_pipeline starts a server on the preview's weights
    (converted once) and closing the pipeline stops it, children included."""
    pipeline = load_pipeline("auto", checkpoints=tmp_path, device="cpu", isolate_decoding=False, engine="vllm",
                             vllm=VLLMOptions(served_dir=served_dir.parent / "served", kv_cache_gib=1))
    server = pipeline.engine.server
    processes = _server_pid_tree(server)
    try:
        session = pipeline.new_session()
        session.add_media(pipeline.encode(media_factory.make_image(tmp_path / "photo.png")))
        assert "".join(session.ask("What is in the picture?", **SHORT)).strip()
    finally:
        pipeline.close()
    deadline = time.monotonic() + 60
    while any(process.is_running() and process.status() != psutil.STATUS_ZOMBIE for process in processes):
        assert time.monotonic() < deadline, "the vLLM server outlived the app"
        time.sleep(0.5)


def test_a_server_that_is_not_there_is_a_clear_error_at_start(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="is not answering"):
        load_pipeline("auto", checkpoints=tmp_path, device="cpu", isolate_decoding=False, engine="vllm",
                      vllm=VLLMOptions(server="http://127.0.0.1:9/v1"))

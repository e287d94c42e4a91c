"""Decoding in worker processes: same results, and a decoder crash or hang is a MediaError."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests import media_factory as factory
from videollama_demo.config import AudioEncoderConfig
from videollama_demo.media import MediaError
from videollama_demo.media.isolation import DecoderPool
from videollama_demo.media.upload import decode_upload


@pytest.fixture(scope="module")
def pool() -> DecoderPool:
    decoders = DecoderPool(workers=1, timeout_s=60)
    yield decoders
    decoders.close()


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bomb")
    source = factory.make_video(directory / "source.mp4", seconds=1, size=(64, 48), audio="sine", faststart=True)
    return factory.make_frame_count_bomb(source, directory / "bomb.mp4")


def test_the_bomb_really_kills_a_process_that_decodes_it_directly(bomb: Path) -> None:
    code = f"from videollama_demo.media import probe; probe({str(bomb)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode < 0, result.stderr[-500:]  # killed by a signal (abort), not an exception


def test_worker_results_equal_in_process_decoding(pool: DecoderPool, stereo_video: Path) -> None:
    stages: list[str] = []
    isolated = pool.decode(stereo_video, 8, 224, AudioEncoderConfig(), on_stage=stages.append)
    local = decode_upload(stereo_video, 8, 224, AudioEncoderConfig())
    assert stages == ["Reading the file", "Decoding frames", "Reading the audio track"]
    assert isolated.info == local.info
    assert torch.equal(isolated.frames.pixels, local.frames.pixels)
    assert (isolated.frames.thumbnails == local.frames.thumbnails).all()
    assert torch.equal(isolated.audio.fbank, local.audio.fbank)


def test_a_decoder_crash_is_a_media_error_and_the_pool_goes_on(pool: DecoderPool, bomb: Path,
                                                                stereo_video: Path) -> None:
    with pytest.raises(MediaError, match="crashed the video decoder"):
        pool.decode(bomb, 8, 224, AudioEncoderConfig())
    after = pool.decode(stereo_video, 8, 56, None)  # a fresh worker serves the next upload
    assert after.frames.pixels.shape == (3, 8, 56, 56)


def test_media_errors_cross_the_process_boundary(pool: DecoderPool, tmp_path: Path) -> None:
    empty = factory.make_empty(tmp_path / "nothing.mp4")
    with pytest.raises(MediaError, match="empty"):
        pool.decode(empty, 8, 224, None)


def test_a_hang_is_cut_at_the_timeout(stereo_video: Path) -> None:
    """A worker that has not answered by the deadline is killed; the next request gets a fresh one.

    A cold worker spends seconds importing torch before it reads the request, so a 0.2 s limit is
    a decoder that does not answer in time."""
    slow = DecoderPool(workers=1, timeout_s=0.2)
    try:
        with pytest.raises(MediaError, match="took too long"):
            slow.decode(stereo_video, 8, 56, None)
        slow.timeout_s = 120
        assert slow.decode(stereo_video, 8, 56, None).frames.pixels.shape == (3, 8, 56, 56)
    finally:
        slow.close()


def test_a_pipe_is_refused_without_opening_it(pool: DecoderPool, tmp_path: Path) -> None:
    fifo = tmp_path / "never_written.mp4"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(MediaError, match="not a regular file"):
        pool.decode(fifo, 8, 224, None)


def test_a_worker_killed_mid_upload_is_a_clear_message_and_the_next_upload_is_served(stereo_video: Path) -> None:
    """The system (out of memory) or an operator kills the worker while it reads a file."""
    pool = DecoderPool(workers=1, timeout_s=120)
    try:
        with ThreadPoolExecutor(1) as running:
            upload = running.submit(pool.decode, stereo_video, 8, 224, AudioEncoderConfig())
            worker = pool._workers[0]
            deadline = time.monotonic() + 60
            while worker._process is None or not worker._process.is_alive():  # the request is on its way
                assert time.monotonic() < deadline, "the worker did not start"
                time.sleep(0.01)
            os.kill(worker._process.pid, signal.SIGKILL)
            with pytest.raises(MediaError, match="stopped its video decoder while reading 'stereo") as refused:
                upload.result(timeout=60)
        assert "damaged" not in str(refused.value)  # not blamed on the file
        assert pool.decode(stereo_video, 8, 56, None).frames.pixels.shape == (3, 8, 56, 56)
    finally:
        pool.close()

"""Encode once per distinct content: keys, the memory LRU, the disk layer, threads, warming."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from videollama_demo import Pipeline, Reading, load_pipeline
from videollama_demo.encoding import MediaEncoding
from videollama_demo.media import MediaError, MediaInfo, probe
from videollama_demo.pipeline import RuntimeChoice
from videollama_demo.pipeline.encode_cache import EncodeCache, EncodeKey, encoding_bytes


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints: Path) -> Pipeline:
    return load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu")


def with_cache(pipeline: Pipeline, cache: EncodeCache, **changes: object) -> Pipeline:
    """The same loaded model with its own cache (and, for key tests, other settings)."""
    config = dataclasses.replace(pipeline.config, **changes.pop("config", {}))
    runtime = changes.pop("runtime", pipeline.runtime)
    return Pipeline(config, pipeline.encoder, pipeline.llm, runtime, encode_cache=cache)


def assert_same_encoding(a: MediaEncoding, b: MediaEncoding) -> None:
    assert torch.equal(a.video, b.video)
    assert (a.audio is None and b.audio is None) or torch.equal(a.audio, b.audio)
    np.testing.assert_array_equal(a.thumbnails, b.thumbnails)
    assert (a.kind, a.frame_indices, a.frame_times, a.message, a.audio_note, a.clip_spans) == \
        (b.kind, b.frame_indices, b.frame_times, b.message, b.audio_note, b.clip_spans)


def copy_with_one_byte_changed(source: Path, target: Path) -> Path:
    """A copy whose muxer tag "Lavf" reads "Lavg": other bytes, the same pictures and sound."""
    data = bytearray(source.read_bytes())
    where = data.find(b"Lavf")
    assert where >= 0
    data[where + 3] = ord("g")
    target.write_bytes(bytes(data))
    return target


# -- hits ------------------------------------------------------------------------------------------

def test_a_hit_equals_a_fresh_encode_and_names_the_new_upload(tiny: Pipeline, shared_media: dict[str, Path],
                                                              tmp_path: Path) -> None:
    cached = with_cache(tiny, EncodeCache())
    first = cached.encode(shared_media["video"])
    upload = Path(shutil.copyfile(shared_media["video"], tmp_path / "same_bytes_other_name.mp4"))
    hit = cached.encode(upload)
    fresh = with_cache(tiny, EncodeCache(memory_bytes=0)).encode(upload)
    assert not first.from_cache and hit.from_cache and not fresh.from_cache
    assert_same_encoding(hit, fresh)
    assert_same_encoding(hit, first)
    assert hit.info == dataclasses.replace(probe(upload), path=str(upload))


def test_an_image_is_cached_too(tiny: Pipeline, shared_media: dict[str, Path]) -> None:
    cached = with_cache(tiny, EncodeCache())
    first, hit = cached.encode(shared_media["image"]), cached.encode(shared_media["image"])
    assert not first.from_cache and hit.from_cache and hit.kind == "image"
    assert_same_encoding(first, hit)


def test_a_broken_file_is_still_a_media_error_and_is_not_kept(tiny: Pipeline, shared_media: dict[str, Path]) -> None:
    cache = EncodeCache()
    cached = with_cache(tiny, cache)
    for _ in range(2):
        with pytest.raises(MediaError):
            cached.encode(shared_media["broken"])
    assert len(cache) == 0


# -- keys ------------------------------------------------------------------------------------------

def test_one_changed_byte_is_a_miss_even_when_the_pictures_are_the_same(tiny: Pipeline, shared_media: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    cached = with_cache(tiny, EncodeCache())
    original = cached.encode(shared_media["video"])
    changed = cached.encode(copy_with_one_byte_changed(shared_media["video"], tmp_path / "tag.mp4"))
    assert not changed.from_cache
    assert_same_encoding(original, changed)


def test_every_setting_that_changes_the_numbers_changes_the_key(tiny: Pipeline, shared_media: dict[str, Path]) -> None:
    video = Path(shared_media["video"])
    cache = EncodeCache()
    base = with_cache(tiny, cache)
    vision = dataclasses.replace(tiny.config.vision, image_size=tiny.config.vision.image_size * 2)
    variants = {
        "frames": base.cache_key(video, use_audio=True, num_frames=4),
        "audio off": base.cache_key(video, use_audio=False, num_frames=8),
        "preset": with_cache(tiny, cache, config={"name": "another-preset"}).cache_key(video, True, 8),
        "image size": with_cache(tiny, cache, config={"vision": vision}).cache_key(video, True, 8),
        "encoder dtype": with_cache(tiny, cache, runtime=RuntimeChoice(
            torch.device("cpu"), torch.bfloat16, torch.float32)).cache_key(video, True, 8),
        "device": with_cache(tiny, cache, runtime=RuntimeChoice(
            torch.device("cuda"), torch.float32, torch.float32)).cache_key(video, True, 8),
        "other bytes": base.cache_key(shared_media["other_video"], True, 8),
    }
    reference = base.cache_key(video, use_audio=True, num_frames=8)
    assert reference == with_cache(tiny, EncodeCache()).cache_key(video, True, 8)  # stable
    digests = {name: key.digest for name, key in variants.items()}
    assert reference.digest not in digests.values()
    assert len(set(digests.values())) == len(digests), digests


def test_other_weights_change_the_key(tiny: Pipeline, shared_media: dict[str, Path]) -> None:
    encoder = type(tiny.encoder)(tiny.config)
    encoder.init_random(seed=1234)
    other = Pipeline(tiny.config, encoder, tiny.llm, tiny.runtime)
    assert other.cache_key(shared_media["video"], True, 8) != tiny.cache_key(shared_media["video"], True, 8)


# -- the memory LRU ------------------------------------------------------------------------------------

def made_encoding(seed: int, frames: int = 2) -> MediaEncoding:
    """A real encoding-shaped value of known size: (1, 4, 16) fp32 tokens and 2 8x8 thumbnails."""
    generator = torch.Generator().manual_seed(seed)
    thumbnails = np.full((frames, 8, 8, 3), seed % 256, dtype=np.uint8)
    info = MediaInfo(path=f"{seed}.mp4", kind="video", size_bytes=1, width=8, height=8, duration=1.0, fps=1.0,
                     num_frames=frames, has_audio=False, video_codec="h264", audio_codec=None,
                     audio_channels=None, audio_sample_rate=None)
    return MediaEncoding(kind="video", video=torch.randn(1, 4, 16, generator=generator), audio=None,
                         frame_indices=list(range(frames)), frame_times=[0.0] * frames, message="m",
                         thumbnails=thumbnails, audio_note=None, clip_spans=[], info=info)


def key(name: str) -> EncodeKey:
    return EncodeKey.of(name, {"frames": 8})


def test_least_recently_used_encodings_go_first_when_the_bytes_run_out() -> None:
    size = encoding_bytes(made_encoding(0))
    assert size == 4 * 16 * 4 + 2 * 8 * 8 * 3
    cache = EncodeCache(memory_bytes=int(2.5 * size))
    made: list[str] = []

    def fetch(name: str, seed: int) -> MediaEncoding:
        return cache.get_or_create(key(name), lambda: made.append(name) or made_encoding(seed))

    fetch("a", 1), fetch("b", 2)
    assert fetch("a", 1).from_cache  # "a" is now the most recent
    fetch("c", 3)  # over budget: "b", the least recently used, goes
    assert cache.get(key("b")) is None and cache.get(key("a")) is not None and cache.get(key("c")) is not None
    assert cache.bytes_used == 2 * size and len(cache) == 2
    assert made == ["a", "b", "c"]


def test_an_encoding_larger_than_the_budget_is_returned_but_not_kept() -> None:
    cache = EncodeCache(memory_bytes=100)
    encoding = cache.get_or_create(key("big"), lambda: made_encoding(5))
    assert not encoding.from_cache and len(cache) == 0 and cache.bytes_used == 0


def test_memory_bytes_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        EncodeCache(memory_bytes=-1)


# -- the disk layer ------------------------------------------------------------------------------------

def test_the_disk_layer_survives_a_new_pipeline(tiny: Pipeline, shared_media: dict[str, Path], tmp_path: Path) -> None:
    first = with_cache(tiny, EncodeCache(cache_dir=tmp_path)).encode(shared_media["video"])
    restarted = with_cache(tiny, EncodeCache(cache_dir=tmp_path))
    hit = restarted.encode(shared_media["video"])
    assert not first.from_cache and hit.from_cache
    assert_same_encoding(first, hit)
    assert hit.info == first.info
    assert [path.suffix for path in tmp_path.iterdir()] == [".safetensors"]  # no temporary files left


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_cache_file_is_ignored_and_replaced(tiny: Pipeline, shared_media: dict[str, Path], tmp_path: Path,
                                                      damage: str, caplog: pytest.LogCaptureFixture) -> None:
    first = with_cache(tiny, EncodeCache(cache_dir=tmp_path)).encode(shared_media["video"])
    (stored,) = tmp_path.glob("*.safetensors")
    data = stored.read_bytes()
    stored.write_bytes({"garbage": b"not a safetensors file" * 10, "truncated": data[: len(data) // 2],
                        "empty": b""}[damage])
    with caplog.at_level(logging.WARNING):
        again = with_cache(tiny, EncodeCache(cache_dir=tmp_path)).encode(shared_media["video"])
    assert not again.from_cache and "unreadable cache file" in caplog.text
    assert_same_encoding(first, again)
    assert with_cache(tiny, EncodeCache(cache_dir=tmp_path)).encode(shared_media["video"]).from_cache  # replaced


def test_the_disk_layer_drops_the_oldest_files_beyond_its_budget(tmp_path: Path) -> None:
    one = EncodeCache(memory_bytes=0, cache_dir=tmp_path)
    one.get_or_create(key("a"), lambda: made_encoding(1))
    file_size = next(tmp_path.glob("*.safetensors")).stat().st_size
    small = EncodeCache(memory_bytes=0, cache_dir=tmp_path, disk_bytes=int(2.5 * file_size))
    for name in "bc":
        small.get_or_create(key(name), lambda: made_encoding(2))
    assert small.get_or_create(key("a"), lambda: made_encoding(1)).from_cache is False  # "a" was the oldest
    names = {path.name for path in tmp_path.glob("*.safetensors")}
    assert names == {f"{key(name).digest}.safetensors" for name in "ca"}  # then "b" was


def test_a_file_of_another_key_is_not_used(tmp_path: Path) -> None:
    EncodeCache(memory_bytes=0, cache_dir=tmp_path).get_or_create(key("a"), lambda: made_encoding(1))
    (stored,) = tmp_path.glob("*.safetensors")
    stored.rename(tmp_path / f"{key('b').digest}.safetensors")
    fresh = EncodeCache(memory_bytes=0, cache_dir=tmp_path).get_or_create(key("b"), lambda: made_encoding(2))
    assert not fresh.from_cache and torch.equal(fresh.video, made_encoding(2).video)


# -- threads -----------------------------------------------------------------------------------------

def test_concurrent_uploads_of_the_same_file_encode_it_once(tiny: Pipeline, shared_media: dict[str, Path]) -> None:
    cached = with_cache(tiny, EncodeCache())
    start = threading.Barrier(4)
    results: list[MediaEncoding] = []
    stages: list[list[str]] = [[] for _ in range(4)]

    def upload(index: int) -> None:
        start.wait()
        results.append(cached.encode(shared_media["other_video"], on_stage=stages[index].append))

    workers = [threading.Thread(target=upload, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert len(results) == 4
    assert sum("Encoding" in seen for seen in stages) == 1  # one thread encoded, three waited for it
    assert sum(not result.from_cache for result in results) == 1
    reference = with_cache(tiny, EncodeCache(memory_bytes=0)).encode(shared_media["other_video"])
    for result in results:
        assert_same_encoding(result, reference)


def test_a_failed_encode_reaches_every_waiting_thread() -> None:
    cache = EncodeCache()
    entered, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def failing() -> MediaEncoding:
        entered.set()
        release.wait(timeout=30)
        raise MediaError("The file could not be read.")

    def call(create) -> None:
        try:
            cache.get_or_create(key("x"), create)
        except MediaError as err:
            errors.append(err)

    owner = threading.Thread(target=call, args=(failing,))
    owner.start()
    entered.wait(timeout=30)
    waiter = threading.Thread(target=call, args=(lambda: pytest.fail("the waiter must not encode"),))
    waiter.start()
    release.set()
    owner.join(timeout=30), waiter.join(timeout=30)
    assert [str(err) for err in errors] == ["The file could not be read."] * 2
    assert cache.get_or_create(key("x"), lambda: made_encoding(3)).from_cache is False  # nothing was kept


# -- warming -------------------------------------------------------------------------------------------

def test_warm_cache_encodes_in_the_background_and_skips_bad_files(tiny: Pipeline, shared_media: dict[str, Path],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    cached = with_cache(tiny, EncodeCache())
    with caplog.at_level(logging.WARNING):
        worker = cached.warm_cache([shared_media["broken"], shared_media["mute"], shared_media["image"]])
        worker.join(timeout=120)
    assert not worker.is_alive() and worker.daemon
    assert "could not pre-encode" in caplog.text and "broken.mp4" in caplog.text
    assert cached.encode(shared_media["mute"]).from_cache and cached.encode(shared_media["image"]).from_cache


def test_the_disk_layer_keeps_segments_subtitle_cues_and_notes(tiny: Pipeline, shared_media: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """Long-video mode and a subtitle stream survive a restart like a plain clip does."""
    fresh = with_cache(tiny, EncodeCache(cache_dir=tmp_path / "cache"))
    made = fresh.encode(shared_media["video"], Reading(long_video=True, segments=2, subtitles="embedded"))
    restarted = with_cache(tiny, EncodeCache(cache_dir=tmp_path / "cache"))
    again = restarted.encode(shared_media["video"], Reading(long_video=True, segments=2, subtitles="embedded"))
    assert again.from_cache and len(made.segment_spans) == 2
    assert_same_encoding(made, again)
    assert (again.segment_spans, again.subtitles, again.notes) == (made.segment_spans, made.subtitles, made.notes)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of 16 KiB (tmpfs): any encoding is larger, so writing one ends in ENOSPC."""
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("cannot mount a small tmpfs to fill: no `mount` command on this machine")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_costs_only_the_cache_entry(tiny: Pipeline, shared_media: dict[str, Path], full_disk: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    cache = EncodeCache(cache_dir=full_disk)
    with caplog.at_level(logging.WARNING):
        encoding = with_cache(tiny, cache).encode(shared_media["video"])
    assert not encoding.from_cache and "No space left on device" in caplog.text
    assert list(full_disk.iterdir()) == []  # no partial file is left holding the space
    assert_same_encoding(encoding, with_cache(tiny, EncodeCache(memory_bytes=0)).encode(shared_media["video"]))
    assert with_cache(tiny, cache).encode(shared_media["video"]).from_cache  # the memory layer still serves it

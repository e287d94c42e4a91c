"""Batch runs: every (video, question, setting) answered once, as JSON lines that survive a crash.

`plan_jobs` lists the work, `ResultStore` is the `results.jsonl` file (appended and flushed one row
at a time, read back to skip what is done), `BatchRunner` encodes each video once per setting and
answers its questions through the pipeline's engine, `engine.parallel_requests` at a time (one for
the local model, many for a vLLM server that batches them). Each answer is stateless: a fresh
session per question, reset after, so no answer sees another question.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..chat.conversation import ChatError
from ..encoding import MediaEncoding
from ..engines.base import EngineError
from ..media import MediaError
from ..reading import Reading
from .content_digest import content_digest
from .pipeline import Pipeline

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv",
                            ".flv", ".ts", ".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VARY_KEYS = ("audio", "frames")
MODEL_VARY_REFUSED = ("--vary model=... is not supported: one process holds one model. Run the batch once per "
                      "model, each with its own --model and --out folder.")
SWITCH_WORDS = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False, "1": True,
                "0": False}
FRAME_STRIPS = "frames"  # folder under --out: one strip of the sampled frames per (video, setting)


@dataclass(frozen=True)
class Setting:
    """How a video is read for one run of its questions. None = the pipeline's default."""

    audio: bool = True
    frames: int | None = None

    @property
    def label(self) -> str:
        frames = "default" if self.frames is None else str(self.frames)
        return f"audio={'on' if self.audio else 'off'} frames={frames}"

    def as_dict(self) -> dict[str, Any]:
        return {"audio": self.audio, "frames": self.frames}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Setting:
        return cls(audio=bool(values.get("audio", True)), frames=values.get("frames"))

    def with_values(self, values: dict[str, Any]) -> Setting:
        """This setting with a question's own values (`audio`, `frames`) put over it."""
        audio = parse_switch(values["audio"]) if "audio" in values else self.audio
        frames = int(values["frames"]) if values.get("frames") is not None else self.frames
        return Setting(audio, frames)


@dataclass(frozen=True)
class Question:
    text: str
    video: str | None = None  # only for this video (a path or a file name); None: every video
    settings: dict[str, Any] = field(default_factory=dict)  # `audio` / `frames` fixed for this question

    def applies_to(self, video: Path) -> bool:
        return self.video is None or self.video in (video.name, str(video)) or Path(self.video) == video


@dataclass(frozen=True)
class Job:
    """One answer to write: a question about a video, read with a setting."""

    video: Path
    question: str
    setting: Setting


def parse_switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in SWITCH_WORDS:
        raise ValueError(f"audio must be on or off, not {value!r}")
    return SWITCH_WORDS[word]


def parse_vary(specs: Iterable[str]) -> list[Setting]:
    """`["audio=on,off", "frames=8,16"]` -> the 4 settings of their product (the default: one setting)."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().lower()
        if key == "model":
            raise ValueError(MODEL_VARY_REFUSED)
        if not sep or key not in VARY_KEYS or not values.strip():
            raise ValueError(f"--vary takes KEY=V1,V2 with KEY one of {', '.join(VARY_KEYS)}; got {spec!r}")
        words = [word.strip() for word in values.split(",") if word.strip()]
        axes[key] = [parse_switch(word) for word in words] if key == "audio" else [int(word) for word in words]
    names = list(axes)
    return [Setting(**dict(zip(names, combo))) for combo in itertools.product(*axes.values())] or [Setting()]


def read_questions(path: str | Path) -> list[Question]:
    """One question per line, or JSON lines with `question` and optional `video`, `audio`, `frames`.
    Empty lines and lines starting with # are skipped."""
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("{"):
            questions.append(Question(line))
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
        if not str(entry.get("question", "")).strip():
            raise ValueError(f"{path}, line {number}: a JSON line needs a non-empty \"question\"")
        settings = {key: entry[key] for key in VARY_KEYS if key in entry}
        questions.append(Question(str(entry["question"]).strip(), entry.get("video"), settings))
    if not questions:
        raise ValueError(f"{path} holds no question")
    return questions


def expand_videos(paths: Iterable[str | Path], skip: Path | None = None) -> list[Path]:
    """Files as given (a bad one becomes an error row), folders as their media files, sorted.
    Files under `skip` (the output folder, whose frame strips are images) are not inputs."""
    skip = skip.resolve() if skip is not None else None
    videos: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            videos += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                             and (skip is None or not p.resolve().is_relative_to(skip)))
        else:
            videos.append(path)
    return list(dict.fromkeys(videos))


def plan_jobs(videos: list[Path], questions: list[Question], settings: list[Setting]) -> list[Job]:
    """Every (video, question, setting), grouped by video then setting, duplicates dropped."""
    jobs: dict[Job, None] = {}
    for video in videos:
        for setting in settings:
            for question in questions:
                if question.applies_to(video):
                    jobs[Job(video, question.text, setting.with_values(question.settings))] = None
    return list(jobs)


def digest_of(path: Path) -> str | None:
    try:
        return content_digest(path)
    except OSError:
        return None  # missing or unreadable: its error row says why


def row_key(video: str, digest: str | None, question: str | None, setting: dict[str, Any] | None) -> str:
    """What makes a row the same work: the file (by path and bytes), the question, the setting."""
    return json.dumps([video, digest, question, setting], sort_keys=True)


class ResultStore:
    """`results.jsonl`: read back on start (what is done), then appended one flushed row at a time,
    so Ctrl-C or a crash loses at most the answer being written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        if path.exists():
            self.rows = self._read()

    def _read(self) -> list[dict[str, Any]]:
        rows = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash: that work is simply done again
                log.warning("%s line %d is incomplete; its work will be done again", self.path, number)
        return rows

    def done_keys(self) -> set[str]:
        return {row_key(r["video"], r["digest"], r["question"], r["setting"]) for r in self.rows}

    def append(self, row: dict[str, Any]) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            if out.tell() and not self._ends_with_newline():
                out.write("\n")  # after a line cut by a crash
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            self.rows.append(row)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as raw:
            raw.seek(-1, 2)
            return raw.read(1) == b"\n"


@dataclass(frozen=True)
class RunOptions:
    temperature: float = 1.0  # official sampling unless asked otherwise
    top_p: float = 0.9
    max_new_tokens: int = 300


def pending_jobs(jobs: list[Job], store: ResultStore, digests: dict[Path, str | None]) -> list[Job]:
    """The jobs without a row yet. A file refused under a setting (an error row without a
    question) has all its questions under that setting done."""
    done = store.done_keys()

    def is_done(job: Job) -> bool:
        video, digest, setting = str(job.video), digests[job.video], job.setting.as_dict()
        return (row_key(video, digest, job.question, setting) in done
                or row_key(video, digest, None, setting) in done or row_key(video, digest, None, None) in done)

    return [job for job in jobs if not is_done(job)]


ProgressCallback = Callable[[int], None]


class BatchRunner:
    """Runs jobs against one loaded pipeline and appends a row per answer (or per refused file)."""

    def __init__(self, pipeline: Pipeline, store: ResultStore, out_dir: Path, options: RunOptions = RunOptions(),
                 digests: dict[Path, str | None] | None = None) -> None:
        self.pipeline = pipeline
        self.store = store
        self.out_dir = out_dir
        self.options = options
        self.digests = digests if digests is not None else {}
        self.model = {"model": pipeline.config.name, "preview": pipeline.is_preview,
                      "preview_reason": pipeline.preview_reason}

    def run(self, jobs: list[Job], advance: ProgressCallback = lambda _: None) -> None:
        """Answer `jobs`, `parallel_requests` at a time; each video is encoded once per setting,
        here in the calling thread, while earlier answers are being written."""
        workers = max(1, int(getattr(self.pipeline.engine, "parallel_requests", 1)))
        in_flight = threading.BoundedSemaphore(2 * workers)  # encode ahead a little, not the whole batch
        with ThreadPoolExecutor(workers, thread_name_prefix="batch-answer") as pool:
            futures: list[Future] = []
            try:
                for (video, setting), group in _groups(jobs):
                    encoding = self._encode(video, setting, len(group), advance)
                    for job in group if encoding is not None else ():
                        in_flight.acquire()
                        future = pool.submit(self._answer, job, encoding)
                        future.add_done_callback(lambda done: (in_flight.release(), advance(1)))
                        futures.append(future)
                for future in futures:
                    future.result()  # an unexpected error (not a file's fault) stops the run, loudly
            except BaseException:
                for future in futures:
                    future.cancel()  # Ctrl-C: what is written stays; the rest is done by the next run
                raise

    def _encode(self, video: Path, setting: Setting, questions: int,
                advance: ProgressCallback) -> MediaEncoding | None:
        try:
            encoding = self.pipeline.encode(video, Reading(use_audio=setting.audio, num_frames=setting.frames))
        except (MediaError, OSError) as err:
            self.store.append(self._row(video, None, setting, error=str(err)))
            advance(questions)
            return None
        self._save_frames(video, setting, encoding)
        return encoding

    def _answer(self, job: Job, encoding: MediaEncoding) -> None:
        session = self.pipeline.new_session()
        started = time.perf_counter()
        try:
            session.add_media(encoding)
            reply = session.ask(job.question, temperature=self.options.temperature, top_p=self.options.top_p,
                                max_new_tokens=self.options.max_new_tokens)
            for _ in reply:
                pass
        except (ChatError, EngineError) as err:
            self.store.append(self._row(job.video, job.question, job.setting, error=str(err)))
            return
        finally:
            session.reset()  # frees what the engine keeps for this one-question conversation
        seconds = time.perf_counter() - started
        self.store.append(self._row(
            job.video, job.question, job.setting, answer=reply.text, seconds=round(seconds, 3),
            tokens=reply.generated, prompt_tokens=reply.prefilled + reply.reused,
            frame_times=[round(t, 3) for t in encoding.frame_times], audio_used=encoding.uses_audio,
            audio_note=encoding.audio_note, frames_image=self._frames_name(job.video, job.setting)))

    def _row(self, video: Path, question: str | None, setting: Setting, **fields: Any) -> dict[str, Any]:
        row = {"video": str(video), "digest": self._digest(video), "question": question,
               "setting": setting.as_dict(), "setting_label": setting.label, "answer": None, "error": None,
               "temperature": self.options.temperature, "max_new_tokens": self.options.max_new_tokens}
        return row | self.model | fields

    def _digest(self, video: Path) -> str | None:
        if video not in self.digests:
            self.digests[video] = digest_of(video)
        return self.digests[video]

    def _frames_name(self, video: Path, setting: Setting) -> str:
        digest = (self._digest(video) or "unreadable")[:16]
        return f"{FRAME_STRIPS}/{digest}_{'a' if setting.audio else 'n'}{setting.frames or 0}.jpg"

    def _save_frames(self, video: Path, setting: Setting, encoding: MediaEncoding) -> None:
        """The frames the model saw, side by side in one small JPEG, for the report."""
        target = self.out_dir / self._frames_name(video, setting)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        strip = np.concatenate(list(encoding.thumbnails), axis=1)  # (S, T*S, 3)
        image = Image.fromarray(strip)
        height = 96
        image.resize((max(1, image.width * height // image.height), height)).save(target, quality=85)


def _groups(jobs: list[Job]) -> Iterator[tuple[tuple[Path, Setting], list[Job]]]:
    """Jobs of the same (video, setting), in order: they share one encoding."""
    groups: dict[tuple[Path, Setting], list[Job]] = {}
    for job in jobs:
        groups.setdefault((job.video, job.setting), []).append(job)
    yield from groups.items()

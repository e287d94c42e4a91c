"""The loaded model, shared by every session: `Pipeline.encode` turns a file into LLM-space
tokens, `Pipeline.new_session` starts a conversation, `Pipeline.question_clip` encodes the part
of the video a question asks about."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from ..chat.conversation import ChatError, ChatSession
from ..config import DEFAULT_MAX_SECONDS, VideoLlamaConfig
from ..encoding import MediaEncoding
from ..engines.base import Engine
from ..engines.local import LocalEngine
from ..media import MediaError
from ..media.isolation import DecoderPool
from ..media.probe import probe, require_file
from ..media.subtitles import Cue
from ..media.upload import DecodedUpload, check_duration, decode_upload
from ..media.video import FrameSampling
from ..model.llm import LoadedLLM
from ..model.video_llama import VideoLlamaEncoder
from ..prompt.timecodes import find_time_range, format_time
from ..reading import Reading
from .content_digest import content_digest, gradio_upload_digest, remembered_digest
from .encode_cache import EncodeCache, EncodeKey, tensors_sha256
from .long_video import SEGMENT_SECONDS, EncodeCostMeter, SegmentBudget, max_segments, plan_segments
from .runtime import RuntimeChoice
from .speech_cache import Transcriber
from .timeline import DEFAULT_MAX_SEGMENTS, TimelineCue, TimelinePlan, plan_timeline, run_timeline
from .transcripts import given_cues, with_transcript
from .zero_gpu import gpu_task, on_zero_gpu, to_cpu

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]
FRAMES_ONLY = "answering from the frames only"
NO_SUBTITLE_STREAM = ("This video has no text subtitle stream, so its speech was transcribed instead (speech "
                      "recognition can mishear: check the transcript, or upload an .srt or .vtt file).")


class Pipeline:
    """The loaded model. Shared by every session; per-session state lives in ChatSession."""

    def __init__(self, config: VideoLlamaConfig, encoder: VideoLlamaEncoder, llm: LoadedLLM,
                 runtime: RuntimeChoice, *, engine: Engine | None = None, preview_reason: str | None = None,
                 encode_cache: EncodeCache | None = None, decoder: DecoderPool | None = None,
                 max_seconds: float | None = DEFAULT_MAX_SECONDS, transcriber: Transcriber | None = None) -> None:
        self.config = config
        self.encoder = encoder
        self.llm = llm
        self.runtime = runtime
        self.engine = engine if engine is not None else LocalEngine(llm)
        self.preview_reason = preview_reason
        # On ZeroGPU the encoders run in `@spaces.GPU` worker processes and return CPU tensors.
        self._zero_gpu = on_zero_gpu()
        self._decoding = ThreadPoolExecutor(max_workers=2, thread_name_prefix="decode-ahead")
        self._run_encoders = gpu_task()(self._encode_tensors)
        self.encode_cache = encode_cache if encode_cache is not None else EncodeCache()
        self._weights_id = _weights_fingerprint(encoder)
        # Uploads are decoded in worker processes when given a pool: a decoder that crashes or hangs
        # on a hostile file then costs one worker, not the server.
        self.decoder = decoder
        self.max_seconds = max_seconds
        # Speech -> cues for subtitles="speech" (and "embedded" without a subtitle stream), in the
        # decoder pool like every read of an upload; kept per file digest, model and language.
        self.transcriber = transcriber if transcriber is not None else Transcriber(
            decoder=decoder, max_seconds=max_seconds)
        self._costs = EncodeCostMeter(encoder, config, runtime.device, runtime.encoder_dtype)

    @property
    def is_preview(self) -> bool:
        """True when answers come from the preview LLM, not grounded in the video."""
        return self.config.random_init_seed is not None

    def new_session(self) -> ChatSession:
        return ChatSession(self.llm, self.config.llm.template, self.engine)

    # -- reading files ------------------------------------------------------------------------
    def encode(self, path: str | Path, reading: Reading | None = None, *,
               on_stage: StageCallback | None = None) -> MediaEncoding:
        """Encode a video or an image file into LLM-space tokens (raises MediaError).

        With the default `Reading()` this is the official encoding; see `Reading` for the options
        (more frames, long-video segments, a time range, subtitles). The same bytes with the same
        reading are encoded once: later calls, from any session, get the kept encoding
        (`from_cache` is then True)."""
        reading = reading or Reading()
        stage = on_stage or (lambda _: None)
        num_frames = self._check_frames(reading.num_frames)
        stage("Reading the file")
        file = require_file(path)
        cues = given_cues(reading)
        sampling = self._sampling(num_frames, reading)
        embedded = reading.subtitles == "embedded"
        decoding = self._decode_ahead(file, reading.use_audio, num_frames, sampling, embedded)
        key = self.cache_key(file, reading.use_audio, num_frames, sampling, embedded)
        encoding = self.encode_cache.get_or_create(
            key, lambda: self._encode_file(path, reading.use_audio, num_frames, stage, sampling, embedded, decoding))
        if encoding.from_cache:  # made from another upload of the same bytes, maybe under another name
            encoding = dataclasses.replace(encoding, info=dataclasses.replace(encoding.info, path=str(path)))
            check_duration(encoding.info, self.max_seconds)  # the limit may be lower than when it was made
        if reading.with_subtitles and encoding.kind == "video":
            if cues is None:
                cues, encoding = self._video_cues(file, reading, encoding, stage)
            encoding = with_transcript(encoding, cues, reading.word_budget, self.llm.tokenizer,
                                       self.llm.context_length, self.config.llm.max_new_tokens)
        return encoding

    def _video_cues(self, file: Path, reading: Reading, encoding: MediaEncoding,
                    stage: StageCallback) -> tuple[list[Cue], MediaEncoding]:
        """Cues from the video itself: its subtitle stream, or its speech ("speech", or "embedded"
        when the file has no subtitle stream, which then says so in a note)."""
        if reading.subtitles == "embedded" and encoding.subtitles:
            return list(encoding.subtitles), encoding
        notes = tuple(note for note in encoding.notes if note != NO_SUBTITLE_STREAM)
        if reading.subtitles == "embedded":
            notes += (NO_SUBTITLE_STREAM,)
        speech = self.transcriber.transcript(file, content_digest(file), stage)
        if speech.note:
            notes += (speech.note,)
        return list(speech.cues), dataclasses.replace(encoding, notes=notes)

    def question_clip(self, media: MediaEncoding, question: str, time_range: tuple[float, float] | None = None,
                      detect_time_range: bool = False, on_stage: StageCallback | None = None) -> MediaEncoding | None:
        """The clip a question is answered from: an official clip sampled inside `time_range`, or
        inside a span written in the question when `detect_time_range` is on (off by default: the
        official prompt never changes unless asked). None: answer from the whole medium."""
        span = self._time_range(media, question, time_range, detect_time_range)
        if span is None:
            return None
        cues = list(media.subtitles) if media.transcript is not None else None
        reading = Reading(use_audio=media.uses_audio, num_frames=media.frames_per_clip, time_range=span)
        if cues is not None:
            reading = reading.replace(subtitles="given", cues=tuple(cues))
        return self.encode(media.info.path, reading, on_stage=on_stage)

    def plan_long_video(self, path_or_duration: str | Path | float, use_audio: bool = True,
                        segments: int | None = None, subtitles: bool = False, num_frames: int | None = None,
                        max_new_tokens: int | None = None) -> SegmentBudget:
        """What long-video mode would do, before running it: segments, frames, tokens, and the
        encoding time and memory estimated on this device (measured once on a blank clip).
        The file is only probed (its header), never decoded. `segments` None: as many as fit."""
        frames = self._check_frames(num_frames)
        if isinstance(path_or_duration, (int, float)):
            duration, total, has_audio = float(path_or_duration), None, True
        else:
            info = probe(path_or_duration)
            if info.kind != "video" or info.duration is None:
                raise MediaError("Long-video mode needs a video with a known length.")
            duration, total, has_audio = info.duration, info.num_frames, info.has_audio
        audio_queries = self._audio_queries(use_audio and has_audio)
        budget = plan_segments(
            duration, context_length=self.llm.context_length,
            max_new_tokens=max_new_tokens or self.config.llm.max_new_tokens,
            video_queries=self.config.video_qformer.num_queries, audio_queries=audio_queries,
            frames_per_segment=frames, total_frames=total, subtitles=subtitles, requested=segments)
        seconds, memory = self._costs.segment_cost(frames, audio_queries > 0)
        return dataclasses.replace(budget, estimated_seconds=seconds * budget.segments,
                                   estimated_memory_bytes=memory * budget.segments)

    def plan_timeline(self, path: str | Path, max_segments: int = DEFAULT_MAX_SEGMENTS,
                      reading: Reading | None = None) -> TimelinePlan:
        """The parts a timeline of `path` would describe (one per ~30 s), with the time per part;
        the file is only probed. Raises MediaError for an image or a video of unknown length."""
        reading = reading or Reading()
        return plan_timeline(self, path, max_segments, self._check_frames(reading.num_frames), reading.use_audio)

    def timeline(self, path: str | Path, reading: Reading | None = None, *,
                 max_segments: int = DEFAULT_MAX_SEGMENTS, plan: TimelinePlan | None = None,
                 cancel: threading.Event | None = None, **sampling: float | int) -> Iterator[TimelineCue]:
        """Timed descriptions of each part of a video, in order, each as soon as it is ready (see
        `pipeline/timeline.py`). `reading` gives audio, frames per part and subtitles; `cancel`
        (or closing the iterator) stops it, keeping the cues already given."""
        plan = plan or self.plan_timeline(path, max_segments, reading)
        return run_timeline(self, plan, reading, cancel, **sampling)

    def warm_cache(self, paths: Iterable[str | Path], reading: Reading | None = None) -> threading.Thread:
        """Encode `paths` (e.g. the bundled examples) in a background thread, so that choosing one
        answers at once. A file that fails is logged and skipped; the thread is returned."""
        paths = list(paths)
        worker = threading.Thread(target=self._warm, args=(paths, reading), name="encode-cache-warmer", daemon=True)
        worker.start()
        return worker

    def _warm(self, paths: list[str | Path], reading: Reading | None) -> None:
        for path in paths:
            try:
                self.encode(path, reading)
            except MediaError as err:
                log.warning("could not pre-encode %s: %s", path, err)
            except Exception:  # a background nicety must never take the app down
                log.exception("could not pre-encode %s", path)

    def cache_key(self, path: str | Path, use_audio: bool, num_frames: int, sampling: FrameSampling | None = None,
                  embedded_subtitles: bool = False) -> EncodeKey:
        """What identifies an encoding: the file's bytes and every setting that changes the numbers
        (image size, frames default, audio settings and the preset name are all in the config).
        Segments, a time range and reading the subtitle stream are in it only when used, so the
        official encoding's key is unchanged; given subtitles change the prompt, never the tokens."""
        settings = {
            "config": self.config.to_json(), "weights": self._weights_id, "frames": num_frames, "audio": use_audio,
            "encoder_dtype": str(self.runtime.encoder_dtype), "device": self.runtime.device.type,
            "torch": torch.__version__}
        if sampling is not None:
            settings["sampling"] = dataclasses.asdict(sampling)
        if embedded_subtitles:
            settings["embedded_subtitles"] = True
        return EncodeKey.of(content_digest(path), settings)

    def close(self) -> None:
        """Stop the decoder workers and the engine (the app calls this when it shuts down)."""
        self._decoding.shutdown(wait=False, cancel_futures=True)
        if self.decoder is not None:
            self.decoder.close()
        self.engine.close()

    # -- internals ----------------------------------------------------------------------------
    def _time_range(self, media: MediaEncoding, question: str, given: tuple[float, float] | None,
                    detect: bool) -> tuple[float, float] | None:
        """The span to answer from: the given one (checked), else one found in the question that
        lies in the video, else None."""
        duration = media.info.duration
        if given is None:
            found = find_time_range(question) if detect else None
            if found is None or media.kind != "video" or (duration is not None and found[0] >= duration):
                return None
            given = found
        start, end = float(given[0]), float(given[1])
        if media.kind != "video":
            raise ChatError("A time range needs a video, and this is an image.")
        if not 0 <= start < end:
            raise ChatError(f"A time range needs a start before its end (got {start:g} to {end:g} s).")
        if duration is not None and start >= duration:
            raise ChatError(f"The range starts after the video ends (it is {format_time(duration)} long).")
        return start, min(end, duration) if duration is not None else end

    def _decode_ahead(self, file: Path, use_audio: bool, num_frames: int, sampling: FrameSampling | None,
                      embedded_subtitles: bool) -> Future[DecodedUpload] | None:
        """When the file's bytes must be hashed for its key (not a Gradio upload, not hashed before),
        start decoding it now, on another thread, so that a miss does not wait for the hash (an hour
        of video is ~1 GB: 0.15 s of BLAKE3). After a hit the decode finishes unused."""
        if gradio_upload_digest(file) is not None or remembered_digest(file) is not None:
            return None
        return self._decoding.submit(self._decode, file, use_audio, num_frames, lambda _: None, sampling,
                                     embedded_subtitles)

    def _encode_file(self, path: str | Path, use_audio: bool, num_frames: int, stage: StageCallback,
                     sampling: FrameSampling | None = None, embedded_subtitles: bool = False,
                     decoding: Future[DecodedUpload] | None = None) -> MediaEncoding:
        notes: list[str] = []
        while True:
            if decoding is not None:  # started while the key was computed, with the same arguments
                decoded, decoding = decoding.result(), None
            else:
                decoded = self._decode(path, use_audio, num_frames, stage, sampling, embedded_subtitles)
            try:
                return self._encode_decoded(decoded, use_audio, stage, tuple(notes), embedded_subtitles)
            except torch.OutOfMemoryError:
                segments = len(decoded.segment_spans or ())
                if sampling is None or segments <= 1:
                    raise MediaError("The device ran out of memory encoding this video. "
                                     "Try fewer frames, or turn the audio off.") from None
                self._free_memory()
                fewer = segments // 2
                log.warning("out of memory encoding %d segments of %s; retrying with %d", segments, path, fewer)
                notes.append(f"Out of memory with {segments} segments: encoded {fewer} segments instead.")
                sampling = dataclasses.replace(sampling, segments=fewer, segment_seconds=None)

    def _encode_decoded(self, decoded: DecodedUpload, use_audio: bool, stage: StageCallback,
                        notes: tuple[str, ...], embedded_subtitles: bool) -> MediaEncoding:
        info, frames, clips = decoded.info, decoded.frames, decoded.audio
        spans = decoded.segment_spans or ()
        segments = max(len(spans), 1)
        stage("Encoding")
        # (3, K*T, S, S) -> (K, 3, T, S, S): each segment an official clip, encoded as one batch.
        pixels = frames.pixels.unflatten(1, (segments, -1)).transpose(0, 1)
        fbank = clips.fbank.unflatten(0, (segments, -1)) if clips is not None else None  # (K, clips, 1, mel, L)
        video, audio = self._run_encoders(pixels, fbank)
        return MediaEncoding(
            kind=info.kind, video=video, audio=audio, frame_indices=frames.indices,
            frame_times=frames.times, message=frames.message, thumbnails=frames.thumbnails,
            audio_note=self._audio_note(decoded, use_audio),
            clip_spans=clips.clip_spans if clips is not None else [], info=info,
            segment_spans=tuple(spans), subtitles=decoded.subtitles, notes=notes)

    def _encode_tensors(self, pixels: torch.Tensor, fbank: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(K, 3, T, S, S) frames and (K, clips, 1, mel, L) fbanks -> (1, K*32, H) video and
        (1, K*8, H) audio tokens. On ZeroGPU this runs in a GPU call and returns CPU tensors, since
        CUDA memory of the worker does not exist in the server process."""
        device = self.runtime.device
        video = self.encoder.encode_video(pixels.to(device)).flatten(0, 1)[None]
        audio = None if fbank is None else self.encoder.encode_audio(fbank.to(device)).flatten(0, 1)[None]
        return to_cpu((video, audio)) if self._zero_gpu else (video, audio)

    def _decode(self, path: str | Path, use_audio: bool, num_frames: int, stage: StageCallback,
                sampling: FrameSampling | None = None, embedded_subtitles: bool = False) -> DecodedUpload:
        """Probe, frames and audio clips, in a worker process when the pipeline has a decoder pool."""
        audio = self.config.audio if use_audio else None
        size = self.config.vision.image_size
        options = dict(max_seconds=self.max_seconds, sampling=sampling, read_subtitles=embedded_subtitles)
        if self.decoder is not None:
            return self.decoder.decode(path, num_frames, size, audio, stage, **options)
        try:
            return decode_upload(path, num_frames, size, audio, stage, **options)
        except MediaError:
            raise
        except Exception as err:  # a decoder failure we did not foresee is still the file's fault
            log.exception("decoding %s failed", path)
            raise MediaError(f"'{Path(path).name}' could not be read. Please try another file.") from err

    def _sampling(self, num_frames: int, reading: Reading) -> FrameSampling | None:
        """The frames to read when not the official ones (None = official)."""
        if reading.time_range is not None:
            start, end = float(reading.time_range[0]), float(reading.time_range[1])
            if not 0 <= start < end:
                raise MediaError(f"A time range needs 0 <= start < end, got {start:g} to {end:g} s.")
            return FrameSampling(num_frames, 1, span=(start, end))
        if not reading.long_video:
            return None
        limit = max_segments(self.llm.context_length, self.config.llm.max_new_tokens,
                             self.config.video_qformer.num_queries, self._audio_queries(reading.use_audio),
                             reading.with_subtitles)
        if reading.segments is None:
            return FrameSampling(num_frames, limit, segment_seconds=SEGMENT_SECONDS)
        return FrameSampling(num_frames, min(reading.segments, limit))

    def _audio_queries(self, use_audio: bool) -> int:
        return self.config.audio_qformer.num_queries if use_audio and self.config.audio_qformer else 0

    def _free_memory(self) -> None:
        if self.runtime.device.type == "cuda":
            torch.cuda.empty_cache()

    def _check_frames(self, num_frames: int | None) -> int:
        limit = self.config.max_frame_pos
        num_frames = num_frames or self.config.num_frames
        if not 1 <= num_frames <= limit:
            raise MediaError(f"The number of frames must be between 1 and {limit} "
                             f"(the model's frame-position table has {limit} rows).")
        return num_frames

    def _audio_note(self, decoded: DecodedUpload, use_audio: bool) -> str | None:
        """Why the audio was not used, in words (the official code said nothing); None when it was."""
        if decoded.info.kind == "image" or decoded.audio is not None:
            return None
        if self.config.audio is None:
            return f"This model has no audio branch: {FRAMES_ONLY}."
        if not use_audio:
            return f"Audio is turned off: {FRAMES_ONLY}."
        if not decoded.info.has_audio:
            return f"The file has no audio track: {FRAMES_ONLY}."
        return f"{decoded.audio_error} The audio was not used: {FRAMES_ONLY}."


def _weights_fingerprint(encoder: VideoLlamaEncoder) -> str:
    """Tells weight sets apart for the on-disk cache: every released fine-tune trains the output
    projections (`llama_proj`, `audio_llama_proj`), and hashing them takes milliseconds."""
    projections = [encoder.video_proj] + ([encoder.audio_proj] if hasattr(encoder, "audio_proj") else [])
    return tensors_sha256(param for projection in projections for param in projection.parameters())

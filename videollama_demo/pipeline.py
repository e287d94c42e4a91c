"""Ties media, encoders and the LLM together: `load_pipeline(...)`, `Pipeline.encode`, sessions."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from .chat.conversation import ChatSession, answer_from_scratch
from .chat.kv_cache import KVCachePool
from .config import VideoLlamaConfig
from .encode_cache import DEFAULT_MEMORY_BYTES, EncodeCache, EncodeKey, file_sha256, tensors_sha256
from .encoding import MediaEncoding
from .long_video import (
    CLIP_TEXT_TOKENS,
    SEGMENT_SECONDS,
    TOKENS_PER_WORD,
    SegmentBudget,
    max_segments,
    plan_segments,
    subtitle_word_budget,
    vision_activation_bytes,
)
from .hub import (
    AUTO_DOWNLOAD_PRESET,
    DOWNLOADABLE_PRESETS,
    PathOverrides,
    ResolvedWeights,
    auto_download_blocker,
    download_command,
    download_weights,
    find_local_preset,
    resolve_weights,
)
from .media import MediaError
from .media.isolation import DecoderPool
from .media.probe import probe, require_file
from .chat.templates import subtitle_parts
from .media.subtitles import Cue, Transcript, load_subtitle_file, transcript_for_frames, transcript_for_windows
from .media.upload import DecodedUpload, check_duration, decode_upload
from .media.video import FrameSampling
from .memory import precision_of, startup_report
from .spaces_support import gpu_task, on_zero_gpu, to_cpu
from .model.llm import LoadedLLM, Quantization, load_llm, resolve_llm_path
from .model.video_llama import VideoLlamaEncoder
from .model.weights import CheckpointError, load_official_weights

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]
# subtitles=: None (off, official), True (the video's own text stream), a .srt/.vtt path, or cues.
Subtitles = bool | str | Path | list[Cue] | tuple[Cue, ...] | None
FRAMES_ONLY = "answering from the frames only"
NO_SUBTITLE_STREAM = ("This video has no text subtitle stream. Upload an .srt or .vtt file, or type the "
                      "transcript (speech recognition is not available offline).")
DEFAULT_MAX_SECONDS = 3 * 3600.0  # longest video accepted by default (`--max-duration`)


@dataclass(frozen=True)
class RuntimeChoice:
    device: torch.device
    encoder_dtype: torch.dtype  # autocast dtype of the encoders (official: fp16 on GPU)
    llm_dtype: torch.dtype  # official: bf16 on GPU


def choose_runtime(device: str | torch.device | None, dtype: torch.dtype | None) -> RuntimeChoice:
    """CPU runs fp32. On GPU the default is the official mix (fp16 encoders, bf16 LLM); a GPU without
    bf16 (T4, V100) gets an fp16 LLM. A given dtype is used for both."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        return RuntimeChoice(device, torch.float32, torch.float32)
    if dtype is None:
        return RuntimeChoice(device, torch.float16, _default_llm_dtype(device))
    return RuntimeChoice(device, dtype, dtype)


def _default_llm_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


class Pipeline:
    """The loaded model. Shared by every session; per-session state lives in ChatSession."""

    def __init__(self, config: VideoLlamaConfig, encoder: VideoLlamaEncoder, llm: LoadedLLM,
                 runtime: RuntimeChoice, preview_reason: str | None = None, kv_cache_sessions: int = 8,
                 encode_cache: EncodeCache | None = None, decoder: DecoderPool | None = None,
                 max_seconds: float | None = DEFAULT_MAX_SECONDS) -> None:
        self.config = config
        self.encoder = encoder
        self.llm = llm
        self.runtime = runtime
        self.preview_reason = preview_reason
        self._kv_pool = KVCachePool(kv_cache_sessions)
        # On ZeroGPU the model's work runs in `@spaces.GPU` worker processes: the encoders, and each
        # answer from scratch (no KV cache outlives a call; the logits equal the kept cache's).
        self._zero_gpu = on_zero_gpu()
        self._run_encoders = gpu_task()(self._encode_tensors)
        self._remote_answerer = gpu_task()(answer_from_scratch(llm)) if self._zero_gpu else None
        self.encode_cache = encode_cache if encode_cache is not None else EncodeCache()
        self._weights_id = _weights_fingerprint(encoder)
        # Uploads are decoded in worker processes when given a pool: a decoder that crashes or hangs
        # on a hostile file then costs one worker, not the server.
        self.decoder = decoder
        self.max_seconds = max_seconds
        self._costs: dict[tuple[int, bool], tuple[float, int]] = {}  # measured per-segment encode costs

    @property
    def is_preview(self) -> bool:
        """True when answers come from the preview LLM, not grounded in the video."""
        return self.config.random_init_seed is not None

    def new_session(self) -> ChatSession:
        return ChatSession(self.llm, self.config.llm.template, self.encode, self._kv_pool, self._remote_answerer)

    def encode(self, path: str | Path, use_audio: bool = True, num_frames: int | None = None,
               on_stage: StageCallback | None = None, *, subtitles: Subtitles = None,
               segments: int | str | None = None, time_range: tuple[float, float] | None = None,
               word_budget: int | None = None) -> MediaEncoding:
        """Encode a video or an image file into LLM-space tokens (raises MediaError).

        With the defaults this is the official encoding. Options (videos only):
          subtitles   True: the file's own text subtitle stream; a path: an .srt/.vtt file; a list of
                      Cue: given (e.g. edited) cues. Their words go into the prompt beside each frame
                      (or segment), trimmed to `word_budget` words (default: what fits the context);
                      `transcript` on the result says what was kept and cut.
          segments    "auto" or K: long-video mode, K official clips of `num_frames` frames each,
                      every one introduced by its time range (see `plan_long_video`). "auto" keeps a
                      short video a single official clip. Out of memory retries with fewer segments.
          time_range  (start, end) seconds: one official clip sampled inside that span (with its
                      audio clips from the span). `ChatSession.ask(time_range=...)` uses this.

        The same bytes with the same settings are encoded once: later calls, from any session, get
        the kept encoding (`from_cache` is then True)."""
        stage = on_stage or (lambda _: None)
        num_frames = self._check_frames(num_frames)
        stage("Reading the file")
        file = require_file(path)
        cues = self._given_cues(subtitles)
        sampling = self._sampling(num_frames, segments, time_range, use_audio, subtitles is not None)
        embedded = subtitles is True
        key = self.cache_key(file, use_audio, num_frames, sampling, embedded)
        encoding = self.encode_cache.get_or_create(
            key, lambda: self._encode_file(path, use_audio, num_frames, stage, sampling, embedded))
        if encoding.from_cache:  # made from another upload of the same bytes, maybe under another name
            encoding = dataclasses.replace(encoding, info=dataclasses.replace(encoding.info, path=str(path)))
            check_duration(encoding.info, self.max_seconds)  # the limit may be lower than when it was made
        if subtitles is not None and encoding.kind == "video":
            encoding = self._with_transcript(encoding, cues if cues is not None else list(encoding.subtitles),
                                             word_budget)
        return encoding

    def plan_long_video(self, path_or_duration: str | Path | float, use_audio: bool = True,
                        segments: int | str = "auto", subtitles: bool = False, num_frames: int | None = None,
                        max_new_tokens: int | None = None) -> SegmentBudget:
        """What long-video mode would do, before running it: segments, frames, tokens, and the
        encoding time and memory estimated on this device (measured once on a blank clip).
        The file is only probed (its header), never decoded."""
        frames = self._check_frames(num_frames)
        if isinstance(path_or_duration, (int, float)):
            duration, total, has_audio = float(path_or_duration), None, True
        else:
            info = probe(path_or_duration)
            if info.kind != "video" or info.duration is None:
                raise MediaError("Long-video mode needs a video with a known length.")
            duration, total, has_audio = info.duration, info.num_frames, info.has_audio
        audio_queries = self._audio_queries(use_audio and has_audio)
        llm = self.config.llm
        budget = plan_segments(
            duration, context_length=self.llm.context_length, max_new_tokens=max_new_tokens or llm.max_new_tokens,
            video_queries=self.config.video_qformer.num_queries, audio_queries=audio_queries,
            frames_per_segment=frames, total_frames=total, subtitles=subtitles,
            requested=None if segments == "auto" else int(segments))
        seconds, memory = self._segment_cost(frames, audio_queries > 0)
        return dataclasses.replace(budget, estimated_seconds=seconds * budget.segments,
                                   estimated_memory_bytes=memory * budget.segments)

    def warm_cache(self, paths: Iterable[str | Path], use_audio: bool = True,
                   num_frames: int | None = None) -> threading.Thread:
        """Encode `paths` (e.g. the bundled examples) in a background thread, so that choosing one
        answers at once. A file that fails is logged and skipped; the thread is returned."""
        paths = list(paths)
        worker = threading.Thread(target=self._warm, args=(paths, use_audio, num_frames),
                                  name="encode-cache-warmer", daemon=True)
        worker.start()
        return worker

    def _warm(self, paths: list[str | Path], use_audio: bool, num_frames: int | None) -> None:
        for path in paths:
            try:
                self.encode(path, use_audio=use_audio, num_frames=num_frames)
            except MediaError as err:
                log.warning("could not pre-encode %s: %s", path, err)
            except Exception:  # a background nicety must never take the app down
                log.exception("could not pre-encode %s", path)

    def _encode_file(self, path: str | Path, use_audio: bool, num_frames: int, stage: StageCallback,
                     sampling: FrameSampling | None = None, embedded_subtitles: bool = False) -> MediaEncoding:
        notes: list[str] = []
        while True:
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
        if embedded_subtitles and not decoded.subtitles and info.kind == "video":
            notes = (*notes, NO_SUBTITLE_STREAM)
        return MediaEncoding(
            kind=info.kind, video=video, audio=audio, frame_indices=frames.indices,
            frame_times=frames.times, message=frames.message, thumbnails=frames.thumbnails,
            audio_note=self._audio_note(decoded, use_audio),
            clip_spans=clips.clip_spans if clips is not None else [], info=info,
            segment_spans=tuple(spans), subtitles=decoded.subtitles, notes=notes)

    def _encode_tensors(self, pixels: torch.Tensor,
                        fbank: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1, K*Nq, H) video tokens and (1, K*Na, H) audio tokens (or None) of K clips.

        On ZeroGPU this runs in the GPU worker process (see `_run_encoders`), so what it returns
        goes back to the CPU: CUDA memory of the worker does not exist in the server process."""
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
        return EncodeKey.of(file_sha256(path), settings)

    def _sampling(self, num_frames: int, segments: int | str | None, time_range: tuple[float, float] | None,
                  use_audio: bool, subtitles: bool) -> FrameSampling | None:
        """The frames to read when not the official ones (None = official)."""
        if time_range is not None:
            start, end = float(time_range[0]), float(time_range[1])
            if not 0 <= start < end:
                raise MediaError(f"A time range needs 0 <= start < end, got {start:g} to {end:g} s.")
            return FrameSampling(num_frames, 1, span=(start, end))
        if segments is None:
            return None
        limit = max_segments(self.llm.context_length, self.config.llm.max_new_tokens,
                             self.config.video_qformer.num_queries, self._audio_queries(use_audio), subtitles)
        if segments == "auto":
            return FrameSampling(num_frames, limit, segment_seconds=SEGMENT_SECONDS)
        if not isinstance(segments, int) or segments < 1:
            raise MediaError(f"segments must be \"auto\" or a whole number from 1, not {segments!r}.")
        return FrameSampling(num_frames, min(segments, limit))

    def _audio_queries(self, use_audio: bool) -> int:
        return self.config.audio_qformer.num_queries if use_audio and self.config.audio_qformer else 0

    @staticmethod
    def _given_cues(subtitles: Subtitles) -> list[Cue] | None:
        """Cues given by the caller; None when there are none yet (off, or to be read from the video)."""
        if subtitles is None or subtitles is True:
            return None
        if subtitles is False:
            raise MediaError("subtitles must be None, True, a subtitle file or a list of cues.")
        if isinstance(subtitles, (str, Path)):
            return load_subtitle_file(subtitles)
        return list(subtitles)

    def _with_transcript(self, encoding: MediaEncoding, cues: list[Cue], word_budget: int | None) -> MediaEncoding:
        """Attach what the prompt will show of `cues`: per frame, or per segment in long-video mode.

        Without a `word_budget`, as many words as fit the context: a first guess from the average
        word length, then shrunk until the real tokenizer says the lines fit."""
        make = self._transcript_maker(encoding, cues)
        if word_budget is not None:
            return dataclasses.replace(encoding, subtitles=tuple(cues), transcript=make(word_budget))
        media = sum(block.shape[1] for block in encoding.blocks())
        free = subtitle_word_budget(self.llm.context_length, self.config.llm.max_new_tokens, media,
                                    CLIP_TEXT_TOKENS * max(len(encoding.segment_spans), 1), 0) * TOKENS_PER_WORD
        budget = free // TOKENS_PER_WORD
        transcript = make(budget)
        for _ in range(10):
            used = len(self.llm.tokenizer.encode_parts(subtitle_parts(transcript.lines)))
            if used <= free or budget == 0:
                break
            budget = min(budget - 1, budget * free // used)
            transcript = make(budget)
        return dataclasses.replace(encoding, subtitles=tuple(cues), transcript=transcript)

    @staticmethod
    def _transcript_maker(encoding: MediaEncoding, cues: list[Cue]) -> Callable[[int], Transcript]:
        """word budget -> transcript: per segment, per frame of a time range's clip, or per frame."""
        if encoding.is_segmented:
            spans = list(encoding.segment_spans)
            return lambda budget: transcript_for_windows(cues, [start for start, _ in spans], spans, budget)
        if encoding.segment_spans:  # a time range: only what is said inside it
            windows = _frame_windows_within(encoding.frame_times, *encoding.segment_spans[0])
            return lambda budget: transcript_for_windows(cues, encoding.frame_times, windows, budget)
        duration = encoding.info.duration or (encoding.frame_times[-1] if encoding.frame_times else 0.0)
        return lambda budget: transcript_for_frames(cues, encoding.frame_times, duration, budget)

    def _segment_cost(self, num_frames: int, with_audio: bool) -> tuple[float, int]:
        """(seconds, bytes) to encode one segment on this device, measured once on a blank clip.
        Memory is measured on CUDA; elsewhere it is the ViT's activations, computed."""
        key = (num_frames, with_audio)
        if key not in self._costs:
            size = self.config.vision.image_size
            pixels = torch.zeros(1, 3, num_frames, size, size)
            device = self.runtime.device
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            started = time.perf_counter()
            self.encoder.encode_video(pixels.to(device))
            if with_audio and self.config.audio is not None:
                audio = self.config.audio
                fbank = torch.zeros(1, audio.num_clips, 1, audio.num_mel_bins, audio.target_length)
                self.encoder.encode_audio(fbank.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                memory = torch.cuda.max_memory_allocated(device) - before
            else:
                vision = self.config.vision
                tokens = (size // vision.patch_size) ** 2 + 1
                dtype_bytes = 2 if self.runtime.encoder_dtype in (torch.float16, torch.bfloat16) else 4
                memory = vision_activation_bytes(num_frames, tokens, vision.width, vision.mlp_dim,
                                                 vision.num_heads, dtype_bytes)
            self._costs[key] = (time.perf_counter() - started, memory)
        return self._costs[key]

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

    def close(self) -> None:
        """Stop the decoder workers (the app calls this when it shuts down)."""
        if self.decoder is not None:
            self.decoder.close()


def _frame_windows_within(times: list[float], start: float, end: float) -> list[tuple[float, float]]:
    """Each frame of a time-range clip owns half the gap to its neighbours, inside [start, end]."""
    bounds = [start] + [(a + b) / 2 for a, b in zip(times, times[1:])] + [end]
    return list(zip(bounds[:-1], bounds[1:]))


def _weights_fingerprint(encoder: VideoLlamaEncoder) -> str:
    """Tells weight sets apart for the on-disk cache: every released fine-tune trains the output
    projections (`llama_proj`, `audio_llama_proj`), and hashing them takes milliseconds."""
    projections = [encoder.video_proj] + ([encoder.audio_proj] if hasattr(encoder, "audio_proj") else [])
    return tensors_sha256(param for projection in projections for param in projection.parameters())


def load_pipeline(model: str | VideoLlamaConfig = "auto", checkpoints: str | Path = "checkpoints",
                  device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  kv_cache_sessions: int = 8, *, paths: PathOverrides | None = None,
                  quantization: Quantization | None = None, lora: str | Path | None = None,
                  merge_lora: bool = True, download: bool = False, cache_bytes: int = DEFAULT_MEMORY_BYTES,
                  cache_dir: str | Path | None = None, isolate_decoding: bool = True,
                  max_seconds: float | None = DEFAULT_MAX_SECONDS) -> Pipeline:
    """Load a preset (or "auto": complete local official checkpoints, else the preview).

    `paths` puts single files elsewhere (keys eva_vit, blip2, vl, al, imagebind, llm). `download`
    fetches what is missing first (with "auto": the 7B model, and only with a GPU and the network).
    `quantization` ("8bit"/"4bit", GPU only) loads the LLM with bitsandbytes; `lora` applies a peft
    adapter to the LLM (merged into its weights unless `merge_lora` is False). Encodings are kept in
    `cache_bytes` of memory, and in `cache_dir` across restarts when given. Uploads are decoded in a
    worker process (`isolate_decoding`), and videos longer than `max_seconds` are refused."""
    checkpoints = Path(checkpoints)
    config, preview_reason = _choose_config(model, checkpoints, paths, download)
    runtime = choose_runtime(device, dtype)
    weights = None if config.random_init_seed is not None else _resolve(config, checkpoints, paths, download)
    encoder = _load_encoder(config, weights, runtime)
    llm_path = weights.llm_dir if weights is not None else resolve_llm_path(config.llm, checkpoints)
    llm = load_llm(config.llm, llm_path, runtime.device, runtime.llm_dtype, quantization, lora, merge_lora)
    if log.isEnabledFor(logging.INFO):
        precision = precision_of(runtime.device, runtime.llm_dtype, quantization)
        log.info("%s", startup_report(config, precision, llm.model.config, runtime.device))
    decoder = DecoderPool() if isolate_decoding else None
    if decoder is not None:
        decoder.warm_up()  # the worker imports torch in the background, not on the first upload
    return Pipeline(config, encoder, llm, runtime, preview_reason, kv_cache_sessions,
                    EncodeCache(cache_bytes, cache_dir), decoder, max_seconds)


def _choose_config(model: str | VideoLlamaConfig, checkpoints: Path, paths: PathOverrides | None,
                   download: bool) -> tuple[VideoLlamaConfig, str | None]:
    reason = None
    if isinstance(model, VideoLlamaConfig):
        config = model
    elif model == "auto":
        name, reason = find_local_preset(checkpoints, paths)
        if name == "preview" and download:
            blocker = auto_download_blocker()
            if blocker is None:
                name, reason = AUTO_DOWNLOAD_PRESET, None  # _resolve downloads it
            else:
                reason = f"{reason} (not downloaded: {blocker})"
        config = VideoLlamaConfig.from_name(name)
    else:
        config = VideoLlamaConfig.from_name(model)
    if config.random_init_seed is not None and reason is None:
        reason = "the preview preset was chosen"
    return config, reason


def _resolve(config: VideoLlamaConfig, checkpoints: Path, paths: PathOverrides | None,
             download: bool) -> ResolvedWeights:
    """Every file of `config`, downloaded first if asked; a missing one is an error with the command."""
    if download:
        return download_weights(config, checkpoints, paths).require()
    return resolve_weights(config, checkpoints, paths).require()


def _load_encoder(config: VideoLlamaConfig, weights: ResolvedWeights | None,
                  runtime: RuntimeChoice) -> VideoLlamaEncoder:
    if weights is not None:
        try:
            encoder, report = load_official_weights(config, weights.official_paths(), runtime.device,
                                                    runtime.encoder_dtype)
        except CheckpointError as err:
            if config.name not in DOWNLOADABLE_PRESETS:
                raise
            command = download_command(config.name, weights.checkpoints)
            raise CheckpointError(f"{err}. To get the official file again, delete it and run `{command}`") from err
        log.info("%s", report)
        return encoder
    encoder = VideoLlamaEncoder(config)
    encoder.init_random(config.random_init_seed)
    return encoder.to_runtime(runtime.device, runtime.encoder_dtype)

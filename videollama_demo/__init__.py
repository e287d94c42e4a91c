"""videollama-demo: chat about a video or an image with Video-LLaMA.

Public API (the page, the CLI and `app.py` use only this):
    pipe = load_pipeline("video-llama-2-7b", checkpoints="checkpoints/", device="cuda")
    enc = pipe.encode("clip.mp4")                                # the official reading
    session = pipe.new_session(); session.add_media(enc)
    for delta in session.ask("What is the dog doing?"): print(delta, end="")

Beyond the official prompt (all off by default; see `Reading`):
    enc = pipe.encode("film.mkv", Reading(subtitles="embedded"))   # or Reading.with_subtitle_file("film.srt")
    enc.transcript.kept_words, enc.transcript.cut                    # what the word budget kept and cut
    pipe.plan_long_video("talk.mp4").summary()                       # segments, tokens, time, memory
    enc = pipe.encode("talk.mp4", Reading(long_video=True))          # long-video mode
    for cue in pipe.timeline("talk.mp4"): print(cue.label, cue.text)  # a timed description per ~30 s
    clip = pipe.question_clip(enc, "What happens between 2:10 and 3:00?", detect_time_range=True)
    session.ask("What happens between 2:10 and 3:00?", clip=clip)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Where each public name lives. Imported on first use, so that a process that needs only the media
# readers (the decoder workers) does not load transformers and the models (about 0.5 GB of memory).
_PUBLIC = {
    "ChatError": ".chat.conversation", "ChatSession": ".chat.conversation", "Reply": ".chat.conversation",
    "Turn": ".chat.conversation", "VideoLlamaConfig": ".config", "MediaEncoding": ".encoding",
    "EngineError": ".engines.base", "SamplingSettings": ".engines.base",
    "DownloadError": ".hub", "MediaError": ".media", "MediaInfo": ".media",
    "Cue": ".media.subtitles", "Transcript": ".media.subtitles", "format_cues_as": ".media.cue_formats",
    "format_cues": ".media.subtitles", "parse_transcript": ".media.subtitles",
    "LLMLoadError": ".model.llm", "CheckpointError": ".model.weights",
    "Pipeline": ".pipeline", "load_pipeline": ".pipeline", "SegmentBudget": ".pipeline.long_video",
    "TimelineCue": ".pipeline.timeline", "TimelinePlan": ".pipeline.timeline",
    "find_citations": ".prompt.timecodes", "format_time": ".prompt.timecodes", "parse_time": ".prompt.timecodes",
    "Reading": ".reading",
}

if TYPE_CHECKING:
    from .chat.conversation import ChatError, ChatSession, Reply, Turn
    from .config import VideoLlamaConfig
    from .encoding import MediaEncoding
    from .engines.base import EngineError, SamplingSettings
    from .hub import DownloadError
    from .media import MediaError, MediaInfo
    from .media.cue_formats import format_cues_as
    from .media.subtitles import Cue, Transcript, format_cues, parse_transcript
    from .model.llm import LLMLoadError
    from .model.weights import CheckpointError
    from .pipeline import Pipeline, load_pipeline
    from .pipeline.long_video import SegmentBudget
    from .pipeline.timeline import TimelineCue, TimelinePlan
    from .prompt.timecodes import find_citations, format_time, parse_time
    from .reading import Reading


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'videollama_demo' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ChatError", "ChatSession", "CheckpointError", "Cue", "DownloadError", "EngineError", "LLMLoadError",
    "MediaEncoding", "MediaError", "MediaInfo", "Pipeline", "Reading", "Reply", "SamplingSettings",
    "SegmentBudget", "TimelineCue", "TimelinePlan", "Transcript", "Turn", "VideoLlamaConfig", "find_citations",
    "format_cues", "format_cues_as", "format_time",
    "load_pipeline", "parse_time", "parse_transcript",
]

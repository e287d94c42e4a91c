"""videollama-demo: chat about a video or an image with Video-LLaMA.

Public API (the UI uses only this):
    pipe = load_pipeline("video-llama-2-7b", checkpoints="checkpoints/", device="cuda")
    enc = pipe.encode("clip.mp4", use_audio=True)
    session = pipe.new_session(); session.add_media(enc)
    for delta in session.ask("What is the dog doing?"): print(delta, end="")

Beyond the official prompt (all off by default; see Pipeline.encode and ChatSession.ask):
    enc = pipe.encode("film.mkv", subtitles=True)          # or "film.srt", or a list of Cue
    enc.transcript.kept_words, enc.transcript.cut           # what the word budget kept and cut
    cues = parse_transcript(edited_text)                    # the user's edit of format_cues(enc.subtitles)
    pipe.plan_long_video("talk.mp4").summary()              # segments, tokens, time, memory
    enc = pipe.encode("talk.mp4", segments="auto")          # long-video mode
    session.ask("What happens between 2:10 and 3:00?", detect_time_range=True)  # or time_range=(130, 180)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Where each public name lives. Imported on first use, so that a process that needs only the media
# readers (the decoder workers) does not load transformers and the models (about 0.5 GB of memory).
_PUBLIC = {
    "ChatError": ".chat.conversation", "ChatSession": ".chat.conversation", "Reply": ".chat.conversation",
    "Turn": ".chat.conversation", "VideoLlamaConfig": ".config", "MediaEncoding": ".encoding",
    "SegmentBudget": ".long_video", "MediaError": ".media", "Cue": ".media.subtitles",
    "format_cues": ".media.subtitles", "parse_transcript": ".media.subtitles", "Pipeline": ".pipeline",
    "load_pipeline": ".pipeline",
}

if TYPE_CHECKING:
    from .chat.conversation import ChatError, ChatSession, Reply, Turn
    from .config import VideoLlamaConfig
    from .encoding import MediaEncoding
    from .long_video import SegmentBudget
    from .media import MediaError
    from .media.subtitles import Cue, format_cues, parse_transcript
    from .pipeline import Pipeline, load_pipeline


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'videollama_demo' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ChatError", "ChatSession", "Cue", "MediaEncoding", "MediaError", "Pipeline", "Reply", "SegmentBudget", "Turn",
    "VideoLlamaConfig", "format_cues", "load_pipeline", "parse_transcript",
]

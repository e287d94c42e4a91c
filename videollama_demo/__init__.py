"""videollama-demo: chat about a video or an image with Video-LLaMA.

Public API (the UI uses only this):
    pipe = load_pipeline("video-llama-2-7b", checkpoints="checkpoints/", device="cuda")
    enc = pipe.encode("clip.mp4", use_audio=True)
    session = pipe.new_session(); session.add_media(enc)
    for delta in session.ask("What is the dog doing?"): print(delta, end="")
"""

from .chat.conversation import ChatError, ChatSession, Reply, Turn
from .config import VideoLlamaConfig
from .encoding import MediaEncoding
from .media import MediaError
from .pipeline import Pipeline, load_pipeline

__all__ = [
    "ChatError", "ChatSession", "MediaEncoding", "MediaError", "Pipeline", "Reply", "Turn",
    "VideoLlamaConfig", "load_pipeline",
]

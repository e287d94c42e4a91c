"""Fixed strings and numbers of the official Video-LLaMA code (`video_llama/processors/`,
`video_llama/conversation/conversation_video.py`).

Placeholder strings live here only; every other module imports them.
"""

# Where media embeddings are spliced into the prompt (the official code splits on this string).
IMAGE_PLACEHOLDER = "<ImageHere>"
# Added to the official tokenizer next to <ImageHere>; never reaches the embedding table.
AUDIO_PLACEHOLDER = "<AudioHere>"

# OpenAI-CLIP normalisation used for frames and images.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# System prompt of the image path (both demos) and of `demo_video.py`'s video path.
VISUAL_SYSTEM_PROMPT = (
    "You are able to understand the visual content that the user provides. "
    "Follow the instructions carefully and explain your answers in detail."
)

# First user message of each media path, before the question is joined (`Chat.upload_img`,
# `Chat.upload_video`, `Chat.upload_video_without_audio`).
IMAGE_MESSAGE = f"<Image>{IMAGE_PLACEHOLDER}</Image> "
VIDEO_MESSAGE_PREFIX = f"<Video>{IMAGE_PLACEHOLDER}</Video> "
# The official string literal is backslash-continued, which leaves 17 and 18 spaces in it.
AUDIO_VIDEO_MESSAGE = (
    "Close your eyes, open your ears and you imagine only based on the sound that: "
    f"{IMAGE_PLACEHOLDER}." + " " * 17
    + f"Close your ears, open your eyes and you see that <Video>{IMAGE_PLACEHOLDER}</Video>." + " " * 18
    + "Now answer my question based on what you have just seen and heard."
)

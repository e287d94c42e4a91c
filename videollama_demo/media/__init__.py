"""Files in, tensors out: probing uploads, sampling frames, reading the audio track.

Knows nothing about models. Every problem a user can cause raises `MediaError` with a sentence
meant for that user.
"""

from .audio import AudioClips, clip_start_times, load_audio_clips, load_waveform, waveform_to_clips
from .image import load_image
from .probe import MediaError, MediaInfo, probe
from .video import MAX_FRAMES, SampledFrames, frame_message, frame_times, load_video_frames, uniform_indices

__all__ = [
    "MAX_FRAMES",
    "AudioClips",
    "MediaError",
    "MediaInfo",
    "SampledFrames",
    "clip_start_times",
    "frame_message",
    "frame_times",
    "load_audio_clips",
    "load_image",
    "load_video_frames",
    "load_waveform",
    "probe",
    "uniform_indices",
    "waveform_to_clips",
]

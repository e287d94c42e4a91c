"""One conversation: its turns, the splice of media into the prompt, and the streamed text."""

"""Text in, ids out: prompt parts, the official templates, media messages, the tokenizer, time text.

Knows no model and no file."""

"""Text: prompt templates, the prompt's token ids for each model family, and training features."""

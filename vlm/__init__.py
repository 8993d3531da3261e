"""Mirada's vision-language model code: model registry, training, generation and the demo."""

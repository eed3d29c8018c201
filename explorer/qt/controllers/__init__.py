"""Plain controller classes: each turns one kind of intent into trainer calls or worker requests."""

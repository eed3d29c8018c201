"""Plain controller classes: user intents become core-model changes or worker requests."""

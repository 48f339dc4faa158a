"""Models: one small async interface over OpenAI-compatible servers, Anthropic, local transformers,
the privileged oracle expert, and scripted models for tests."""

"""imageapi: the OpenAI Images API, served by open diffusion models on your own GPU."""

__version__ = "0.1.0"

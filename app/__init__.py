"""The DALLMi REST service: corpora, adaptation jobs, a model registry and predictions over HTTP."""

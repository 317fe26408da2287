"""The search pipeline: a request, its plan, candidate, rerank and cut stages, and the runner."""

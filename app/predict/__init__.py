"""Multi-label prediction with registered versions: bounded model cache and micro-batching."""

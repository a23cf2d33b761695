"""Files in and out: data readers per format, scaling and label coding, predictions,
weights, atomic writes, input digests and plots. Never imports runner.runs."""

"""The outbound pipeline: the delivery worker, rate limits, retries."""

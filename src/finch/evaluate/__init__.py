"""Does fine-tuning help? Reference metrics and perplexity, base vs tuned, as report.json, report.md and plots."""

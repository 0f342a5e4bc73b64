"""The self-training loop's plumbing: resumable steps with manifests, and its report."""

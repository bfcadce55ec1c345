"""Package data: the shipped YAML files (demo job, sensor profiles, cluster profiles)."""

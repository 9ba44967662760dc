"""Launch engines: each only builds the launch (argv, a playbook, a task) and collects records."""

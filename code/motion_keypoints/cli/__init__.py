"""The commands: one module per command with ``main(argv) -> int``, all under one console script
(:mod:`.main`, ``motion-keypoints COMMAND``); ``code/<command>.py`` are
three-line shims around them. Every command runs in :func:`._run.run_command`."""

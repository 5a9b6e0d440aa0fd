"""Running pacemaker's programs: the runner, the profile every call goes through, the steps, where
they run (launcher) and where their progress goes."""

"""Small shared helpers: configs, run directories, atomic writes, devices."""

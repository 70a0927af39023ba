from enliven.cli import run

run()

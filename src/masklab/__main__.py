from masklab.cli import run

run()

from pixdex.cli import run

run(prog_name="pixdex")
